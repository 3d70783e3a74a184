"""Channel attention that works on the pooled C x 1 x 1 map (a gate's inside): ECA's 1-D conv
over the channels (a file of its own; its nn.Module lives in gate_torch.py)."""

from __future__ import annotations

from ..expr import as_int, vmax
from .base import Axis, Count, Counts, Factor, Key, LayerType, Pointwise, REQUIRED, ShapeError, Term, Text, hw, prod, register, shape_text


@register
class EcaConv(Pointwise):
    torch_module = "gate_torch"  # its own nn.Module classes
    name = "eca_conv"
    doc = (
        "ECA's 1-D convolution over the channels of a pooled C x 1 x 1 map (Wang et al. 2020; timm's "
        "EcaModule: `x.mean((2, 3)).view(N, 1, C)`, torch.nn.Conv1d(1, 1, kernel, padding (kernel - 1) / 2, "
        "no bias), viewed back to C x 1 x 1): channel c becomes the kernel's weighted sum of channels "
        "c - (kernel - 1)/2 .. c + (kernel - 1)/2, zero beyond the ends. A weight of shape 1 x 1 x kernel "
        "(state_dict key `weight`, as the Conv1d's); a new tensor."
    )
    keys = (Key("kernel", "size", REQUIRED, "the odd number of neighbouring channels each output weighs"),)

    def channel_reads(self, a, xs, y, lo, hi):
        half = (a["kernel"] - 1) // 2  # channel c weighs channels c - half .. c + half
        return [(0, max(lo - half, 0), min(hi + half, xs[0][0]), None)]
    formulas = {"shape": "unchanged (C x 1 x 1)", "params": "kernel", "buffers": "0", "macs": "C * kernel"}

    def out(self, a, xs):
        x = xs[0]
        if len(x) != 3 or x[1:] != (1, 1):
            got = f"a flat vector of {x[0]}" if len(x) == 1 else f"a {len(x) - 1}-D map {shape_text(x)}"
            raise ShapeError(f"eca_conv needs a pooled C x 1 x 1 map, got {got}", hint="put global_avgpool before it")
        if a["kernel"] % 2 == 0:
            raise ShapeError(f"eca_conv needs an odd kernel (the output keeps C channels), got {a['kernel']}")
        return x

    def details(self, a, xs, y):
        return f"k={a['kernel']}"

    def count(self, a, xs, y):
        return a["kernel"], 0

    def macs(self, a, xs, y):
        return xs[0][0] * a["kernel"]  # every output channel, kernel weights (zero padding counted, as torch counts it)

    def formula(self, a, xs, y):
        k = Factor("k", a["kernel"])
        return Counts(Count((Term((k,)),), "one 1-D kernel shared by all channels"), Count(),
                      Count((Term((Factor("C", xs[0][0]), k)),)))

    def size_formula(self, a, xs, y):
        return Text("output size: unchanged -> {}", (tuple(y),))

    def saves(self, a, training):
        return ("input",)  # the weight's gradient needs the input

    def backward_macs(self, a, xs, y, grad_input, grad_weight):
        return (xs[0][0] * a["kernel"]) * (int(bool(grad_input)) + int(bool(grad_weight)))

    def torch(self, a, xs, y):
        return [("EcaConv", {"kernel": a["kernel"]})]

    torch_ops = ("Conv1d",)
    channel_seq = True  # reads a call on the pooled channels seen as a 1-channel sequence, (N, 1, C)

    def from_torch(self, op, kw, xs, y):
        k = kw.get("kernel_size")
        k = k[0] if isinstance(k, (tuple, list)) and len(k) == 1 else k
        if not kw.get("channel_seq") or kw.get("in_channels") != 1 or kw.get("out_channels") != 1 or kw.get("bias") \
                or not isinstance(k, int) or k % 2 == 0:
            return None
        one = (1,)
        if tuple(kw.get("stride", one)) != one or tuple(kw.get("dilation", one)) != one or kw.get("groups", 1) != 1 \
                or kw.get("padding") not in ((k - 1) // 2, ((k - 1) // 2,)) or kw.get("padding_mode", "zeros") != "zeros":
            return None
        return {"kernel": k}


@register
class ContextPool(LayerType):
    torch_module = "gate_torch"  # its own nn.Module classes
    name = "context_pool"
    doc = (
        "GCNet's context modelling (Cao et al. 2019; timm's GlobalContext with use_attn): a 1x1 conv from C "
        "channels to one logit per position, a softmax over the H*W positions, and the map's sum weighted by "
        "it: C x H x W to C x 1 x 1. The conv's `weight` (1 x C x 1 x 1) and `bias` (1) are the layer's own "
        "(timm's `conv_attn`, so its state_dict loads). A new tensor."
    )
    keys = (Key("bias", "bool", True, "the logits' conv has a bias"),)
    formulas = {"shape": "C x 1 x 1", "params": "C (+ 1 with bias)", "buffers": "0",
                "macs": "2 * C * H * W (the logits' conv and the weighted sum, a matmul)"}

    def out(self, a, xs):
        x = hw(xs[0], self.name)
        return (x[0], 1, 1)

    def count(self, a, xs, y):
        return xs[0][0] + (1 if a["bias"] else 0), 0

    def macs(self, a, xs, y):
        return 2 * prod(xs[0])

    def formula(self, a, xs, y):
        x = xs[0]
        c, h, w = Factor("C", x[0]), Factor("H", x[1]), Factor("W", x[2])
        params = (Term((c,), "the logits' conv weight"),) + ((Term((Factor("1", 1),), "bias"),) if a["bias"] else ())
        return Counts(Count(params), Count(), Count((Term((Factor("2", 2), c, h, w), "logits' conv, weighted sum"),)))

    def size_formula(self, a, xs, y):
        return Text("output size: C x 1 x 1 = {} (a weighted sum over the whole {}x{} map)", (tuple(y), xs[0][1], xs[0][2]))

    def window(self, a, xs, y):
        x = xs[0]
        return Axis(x[1], x[1], 0, 0, False), Axis(x[2], x[2], 0, 0, False)

    def size_dependent(self, a):
        return True

    def saves(self, a, training):
        return ("input",)  # the conv's and the weighted sum's backward read the map

    def workspace(self, a, xs, y):
        return xs[0][1] * xs[0][2]  # the softmax's output (its backward's, and the weighted sum's other operand)

    def scratch(self, a, xs, y, itemsize, training):
        if training:
            return 0
        hw_ = xs[0][1] * xs[0][2]
        # the logits and their softmax together, then the softmax beside the output
        return as_int(vmax(2 * hw_ - xs[0][0], hw_) * itemsize)

    def backward_macs(self, a, xs, y, grad_input, grad_weight):
        n = prod(xs[0])
        # the input's gradient: through the sum (C*H*W), the softmax's operand (C*H*W) and the conv (C*H*W);
        # the weight's: the softmax's operand and the conv's weight
        return n * (4 if grad_input and grad_weight else 3 if grad_input else 2 if grad_weight else 0)

    def torch(self, a, xs, y):
        return [("ContextPool", {"channels": xs[0][0], "bias": a["bias"]})]

    def probe(self, a, xs, y, collapse):
        return [("AdaptiveAvgPool2d", {"output_size": (1, 1)})]  # every position weighted (the softmax is positive)

    torch_ops = ("ContextPool",)

    def from_torch(self, op, kw, xs, y):
        return {"bias": bool(kw.get("bias", True))} if len(xs[0]) == 3 else None
