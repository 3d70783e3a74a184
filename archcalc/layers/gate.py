"""Channel attention that works on the pooled C x 1 x 1 map (a gate's inside): ECA's 1-D conv
over the channels (a file of its own; its nn.Module lives in gate_torch.py)."""

from __future__ import annotations

from .base import Count, Counts, Factor, Key, Pointwise, REQUIRED, ShapeError, Term, Text, register


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
    formulas = {"shape": "unchanged (C x 1 x 1)", "params": "kernel", "buffers": "0", "macs": "C * kernel"}

    def out(self, a, xs):
        x = xs[0]
        if len(x) != 3 or x[1:] != (1, 1):
            got = "a flat vector of " + str(x[0]) if len(x) != 3 else "x".join(map(str, x))
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
