"""Normalisations and learnable scales: batch norm, layer norm, LRN, layer scale."""

from __future__ import annotations

from ..expr import as_int
from .base import rank_ops, torch_rank, REQUIRED, TENSOR, Count, Counts, Factor, Key, Param, Pointwise, Term, args_of, hw, prod, register


@register
class BatchNorm(Pointwise):
    torch_module = "norm_torch"  # its own nn.Module classes
    name = "batchnorm"
    aliases = ("bn",)
    doc = ("Batch normalisation over channels (torch.nn.BatchNorm2d; BatchNorm1d on a flat vector or a C x L map, "
           "BatchNorm3d on C x D x H x W).")
    keys = (
        Key("eps", "float", 1e-5, "epsilon", lo=0, lo_open=True),
        Key("momentum", "float", 0.1, "running-statistics momentum", lo=0, hi=1),
        Key("affine", "bool", True, "learnable scale and shift"),
        Key("scale", "bool", True, "with affine: learnable scale (false: shift only, as Keras' scale=False)"),
    )
    formulas = {
        "shape": "unchanged",
        "params": "2 * C (scale and shift, when affine; C with scale: false)",
        "buffers": "2 * C (running mean and variance; PyTorch's num_batches_tracked counter is not counted)",
        "macs": "0",
    }
    batch_stats = True
    workspace_per_batch = True  # the batch's mean and 1/std per channel (the engine's per-image count keeps its convention)

    def count(self, a, xs, y):
        c = xs[0][0]
        if not a["affine"]:
            return 0, 2 * c
        return (2 * c if a["scale"] else c), 2 * c

    def formula(self, a, xs, y):
        c = Factor("C", xs[0][0])
        if not a["affine"]:
            params = Count((), "affine: false")
        elif a["scale"]:
            params = Count((Term((Factor("2", 2), c)),), "scale and shift")
        else:
            params = Count((Term((c,)),), "shift only")
        return Counts(params, Count((Term((Factor("2", 2), c)),), "running mean and variance"))

    def details(self, a, xs, y):
        return "" if a.get("affine", True) else "no affine"

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        return 2 * xs[0][0]  # the batch mean and inverse standard deviation per channel

    def scratch(self, a, xs, y, itemsize, training):
        # shift only: batch norm's output, then the ChannelBias sum beside it
        return prod(y) * itemsize if a["affine"] and not a["scale"] else 0

    def torch(self, a, xs, y):
        cls = {3: "BatchNorm2d", 4: "BatchNorm3d"}.get(len(xs[0]), "BatchNorm1d")  # 1d: a flat vector or C x L
        shift_only = a["affine"] and not a["scale"]
        bn = (cls, {"num_features": xs[0][0], "eps": a["eps"], "momentum": a["momentum"], "affine": a["affine"] and not shift_only})
        return [bn, ("ChannelBias", {"num_features": xs[0][0]})] if shift_only else [bn]

    torch_ops = rank_ops("BatchNorm2d")

    def from_torch(self, op, kw, xs, y):
        if not kw.get("track_running_stats", True) or kw.get("momentum") is None or not torch_rank(op, xs[0]):
            return None
        return {"eps": kw["eps"], "momentum": kw["momentum"], "affine": bool(kw["affine"])}


@register
class LayerNorm(Pointwise):
    torch_module = "norm_torch"  # its own nn.Module classes
    name = "layernorm"
    doc = (
        "Layer normalisation over the channels at each position (ConvNeXt's LayerNorm2d, the same as "
        "permute / torch.nn.LayerNorm(C) / permute; torch.nn.LayerNorm on a flat vector). No buffers."
    )
    keys = (
        Key("eps", "float", 1e-5, "epsilon (ConvNeXt: 1e-6)", lo=0, lo_open=True),
        Key("affine", "bool", True, "learnable per-channel scale and shift"),
        Key("bias", "bool", True, "with affine: the learnable shift (false: scale only, timm's LayerNorm2dNoBias)"),
    )
    formulas = {"shape": "unchanged", "params": "2 * C (when affine; C without bias)", "buffers": "0", "macs": "0"}

    def out(self, a, xs):
        if len(xs[0]) not in (1, 3):  # LayerNorm2d is 2-D only
            hw(xs[0], self.name)
        return xs[0]

    def count(self, a, xs, y):
        return ((2 if a["bias"] else 1) * xs[0][0] if a["affine"] else 0), 0

    def formula(self, a, xs, y):
        if not a["affine"]:
            return Counts(Count((), "affine: false"))
        if not a["bias"]:
            return Counts(Count((Term((Factor("C", xs[0][0]),)),), "scale (no shift)"))
        return Counts(Count((Term((Factor("2", 2), Factor("C", xs[0][0]))),), "scale and shift"))

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        x = xs[0]
        return 2 if len(x) == 1 else as_int(2 * x[1] * x[2])  # mean and 1/std per position

    def scratch(self, a, xs, y, itemsize, training):
        # native_layer_norm returns the mean and 1/std per position beside the output (kept for
        # backward in training: `workspace`)
        return 0 if training else self.workspace(a, xs, y) * itemsize

    def torch(self, a, xs, y):
        kw = {"normalized_shape": xs[0][0], "eps": a["eps"], "elementwise_affine": a["affine"]}
        if a["affine"] and not a["bias"]:
            kw["bias"] = False
        return [("LayerNorm2d" if len(xs[0]) == 3 else "LayerNorm", kw)]

    torch_ops = ("LayerNorm2d", "LayerNorm")
    channels_last = True  # nn.LayerNorm(C) on a channels-last map is LayerNorm2d

    def from_torch(self, op, kw, xs, y):
        shape = kw["normalized_shape"]
        spatial = op == "LayerNorm2d" or bool(kw.get("channels_last"))
        if spatial != (len(xs[0]) == 3) or tuple(shape if isinstance(shape, (tuple, list)) else [shape]) != (xs[0][0],):
            return None
        out = {"eps": kw["eps"], "affine": bool(kw["elementwise_affine"])}
        if out["affine"] and kw.get("bias") is False:
            out["bias"] = False
        return out


@register
class LayerScale(Pointwise):
    torch_module = "norm_torch"  # its own nn.Module classes
    name = "layer_scale"
    doc = (
        "A learnable per-channel scale, initialised to `init` (ConvNeXt's layer scale): a parameter `gamma` "
        "of shape C times the input, as timm's LayerScale2d, so its state_dict loads; with `bare: true` a "
        "C x 1 x 1 parameter named after the layer, as torchvision's CNBlock.layer_scale."
    )
    keys = (
        Key("init", "float", 1e-6, "initial value of every scale"),
        Key("bare", "bool", False, "the scale is a bare parameter named after the layer on its scope's module "
            "(state_dict key: the layer's name, as torchvision's CNBlock.layer_scale), not a module's `gamma`"),
        Key("vector", "bool", False, "with bare: the bare parameter has shape C, viewed as C x 1 x 1 in forward "
            "(timm's ConvNeXt `gamma`, MetaFormer's `Scale.scale`)"),
        Key("scalar", "bool", False, "with bare: one learnable number for all channels, a parameter of shape () "
            "(timm NF-Net's `skipinit_gain`)"),
    )
    formulas = {"shape": "unchanged", "params": "C (scalar: 1)", "buffers": "0", "macs": "0 (not a conv or linear)"}

    def count(self, a, xs, y):
        return (1 if a["bare"] and a["scalar"] else xs[0][0]), 0

    def formula(self, a, xs, y):
        if a["bare"] and a["scalar"]:
            return Counts(Count((Term((Factor("1", 1),)),), "one scale for all channels"))
        return Counts(Count((Term((Factor("C", xs[0][0]),)),), "one scale per channel"))

    def saves(self, a, training):
        return ("input",)  # the scale's gradient needs the input

    def torch(self, a, xs, y):
        if a["bare"]:
            # times the bare parameter (``parameter``), its last input (a C-vector: viewed per channel)
            return [("ChannelScale", {})] if a["vector"] else [("Mul", {})]
        return [("LayerScale", {"channels": xs[0][0], "init": a["init"], "dims": len(xs[0])})]

    def parameter(self, a, xs, y):
        if not a["bare"]:
            return None
        if a["scalar"]:
            return {"shape": (), "init": a["init"]}
        if a["vector"]:
            return {"shape": (xs[0][0],), "init": a["init"]}
        return {"shape": (xs[0][0],) + (1,) * (len(xs[0]) - 1), "init": a["init"]}

    torch_ops = ("mul", "imul", "mul_", "LayerScale", "LayerScale2d", "timm.layers.layer_scale.LayerScale2d")

    def from_torch(self, op, kw, xs, y):
        # torchvision's CNBlock: self.layer_scale * x, with a C x 1 x 1 parameter (a per-channel scale)
        if op == "LayerScale":
            return {}  # archcalc's own module (its gamma); the initial value is not kept, the default stands
        if op == "LayerScale2d":  # timm's: gamma of shape C
            return None if len(xs[0]) != 3 or kw.get("inplace") else {"init": float(kw.get("init_values", 1e-5))}
        args = args_of(kw) or [kw.get("input"), kw.get("other")]
        params = [v for v in args if isinstance(v, Param)]
        if len(args) != 2 or len(params) != 1 or TENSOR not in args:
            return None
        p = params[0]
        if tuple(p.shape) == () and p.stored is None:  # one learnable number (timm's skipinit_gain)
            return {"bare": True, "scalar": True, **({"init": p.value} if isinstance(p.value, float) else {})}
        if tuple(p.shape) != (xs[0][0],) + (1,) * (len(xs[0]) - 1):
            return None
        out = {"bare": True}
        if p.stored is not None:  # a view of the parameter (timm: gamma.reshape(1, -1, 1, 1))
            if tuple(p.stored) != (xs[0][0],):
                return None
            out["vector"] = True
        if isinstance(p.value, float):
            out["init"] = p.value
        return out


@register
class LRN(Pointwise):
    name = "lrn"
    doc = "Local response normalisation across channels (torch.nn.LocalResponseNorm; AlexNet 2012)."
    keys = (
        Key("size", "size", 5, "channels in the normalising window"),
        Key("alpha", "float", 1e-4, "alpha"),
        Key("beta", "float", 0.75, "beta"),
        Key("k", "float", 2.0, "k (AlexNet: 2; PyTorch's default is 1)"),
    )
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (not a conv or linear)"}

    def details(self, a, xs, y):
        return f"size {a['size']}"

    def out(self, a, xs):
        return hw(xs[0], self.name)

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        # PyTorch composes LRN from elementwise ops: backward keeps the squared input padded to
        # C + size - 1 channels, and the scale before and after the power
        c, h, w = xs[0]
        return as_int((c + a["size"] - 1) * h * w + 2 * c * h * w)

    def backward_scratch(self, a, xs, y, itemsize):
        # the backward of `input / div` (DivBackward0): beside the input's gradient grad / div it
        # computes div's, -grad * ((input / div) / div): three more n-sized temporaries alive at
        # once (a meta-device trace of alexnet-paper's norm2: the peak is 4 n above the live set)
        c, h, w = xs[0]
        return as_int(3 * c * h * w * itemsize)

    def scratch(self, a, xs, y, itemsize, training):
        # F.local_response_norm: x*x (n values), padded to C + size - 1 channels, pooled (n), then
        # three n-sized temporaries in `div.mul(alpha).add(k).pow(beta)` with two alive at once
        # beside the pooled one: peak max(n + padded, 3n) before the output, less the output
        c, h, w = xs[0]
        n = c * h * w
        return as_int((max(n + (c + a["size"] - 1) * h * w, 3 * n) - n) * itemsize)

    def torch(self, a, xs, y):
        return [("LocalResponseNorm", {"size": a["size"], "alpha": a["alpha"], "beta": a["beta"], "k": a["k"]})]

    torch_ops = ("LocalResponseNorm",)

    def from_torch(self, op, kw, xs, y):
        return {"size": kw["size"], "alpha": kw["alpha"], "beta": kw["beta"], "k": kw["k"]}


@register
class GroupNorm(Pointwise):
    name = "groupnorm"
    doc = (
        "Group normalisation (torch.nn.GroupNorm): the channels in `groups` groups, each normalised over "
        "its channels and positions, per image; no buffers. groups: 1 normalises the whole map, "
        "groups = C is an instance norm with a per-channel affine."
    )
    keys = (
        Key("groups", "size", REQUIRED, "groups (divides the channels)"),
        Key("eps", "float", 1e-5, "epsilon", lo=0, lo_open=True),
        Key("affine", "bool", True, "learnable per-channel scale and shift"),
    )
    formulas = {"shape": "unchanged (C divisible by groups)", "params": "2 * C (when affine)", "buffers": "0", "macs": "0"}

    def out(self, a, xs):
        from .base import ShapeError, concrete

        x = xs[0]
        if concrete(x[0], a["groups"]) and x[0] % a["groups"]:
            raise ShapeError(f"groupnorm: {x[0]} channels are not divisible by groups={a['groups']}")
        per_group = [x[0] // a["groups"] if concrete(x[0], a["groups"]) else None, *x[1:]]
        if all(concrete(v) for v in per_group) and all(v == 1 for v in per_group):
            # torch's F.group_norm: "Expected more than 1 value per channel" (training and eval alike)
            raise ShapeError(f"groupnorm: each of the {a['groups']} groups holds one value ({x[0]}/{a['groups']} channels "
                             f"x {'x'.join(map(str, x[1:]))}), which torch refuses to normalise",
                             hint="use fewer groups or a larger input")
        return x

    def details(self, a, xs, y):
        return f"g={a['groups']}" + ("" if a.get("affine", True) else " no affine")

    def count(self, a, xs, y):
        return (2 * xs[0][0] if a["affine"] else 0), 0

    def formula(self, a, xs, y):
        if not a["affine"]:
            return Counts(Count((), "affine: false"))
        return Counts(Count((Term((Factor("2", 2), Factor("C", xs[0][0]))),), "scale and shift"))

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        return 2 * a["groups"]  # mean and 1/std per group

    def scratch(self, a, xs, y, itemsize, training):
        return 0 if training else 2 * a["groups"] * itemsize  # native_group_norm's mean and 1/std

    def torch(self, a, xs, y):
        return [("GroupNorm", {"num_groups": a["groups"], "num_channels": xs[0][0], "eps": a["eps"], "affine": a["affine"]})]

    torch_ops = ("GroupNorm",)

    def from_torch(self, op, kw, xs, y):
        return {"groups": kw["num_groups"], "eps": kw["eps"], "affine": bool(kw["affine"])}


@register
class InstanceNorm(Pointwise):
    name = "instancenorm"
    doc = (
        "Instance normalisation (torch.nn.InstanceNorm2d; 1d / 3d on 1-D / 3-D maps): each channel of each "
        "image normalised over "
        "its positions. torch's defaults: no affine, no running statistics; with "
        "`track_running_stats` 2C buffers, used at inference."
    )
    keys = (
        Key("eps", "float", 1e-5, "epsilon", lo=0, lo_open=True),
        Key("momentum", "float", 0.1, "running-statistics momentum", lo=0, hi=1),
        Key("affine", "bool", False, "learnable per-channel scale and shift"),
        Key("track_running_stats", "bool", False, "keep running mean and variance (buffers)"),
    )
    formulas = {"shape": "unchanged", "params": "2 * C (when affine)",
                "buffers": "2 * C (with track_running_stats)", "macs": "0"}

    def out(self, a, xs):
        from .base import ShapeError, concrete

        from .base import spatial

        x = spatial(xs[0], self.name)
        if not a.get("track_running_stats") and concrete(*x[1:]) and prod(x[1:]) == 1:
            # torch normalises each map over its own positions: "Expected more than 1 spatial element"
            one = "x".join("1" * (len(x) - 1))
            raise ShapeError(f"instancenorm: a {one} map has one value per channel, which torch refuses to normalise",
                             hint="use a larger input, or track_running_stats: true (eval uses the running statistics)")
        return x

    def details(self, a, xs, y):
        return " ".join(w for w, on in (("affine", a.get("affine")), ("running stats", a.get("track_running_stats"))) if on)

    def count(self, a, xs, y):
        c = xs[0][0]
        return (2 * c if a["affine"] else 0), (2 * c if a["track_running_stats"] else 0)

    def formula(self, a, xs, y):
        c = Factor("C", xs[0][0])
        params = Count((Term((Factor("2", 2), c)),), "scale and shift") if a["affine"] else Count((), "affine: false")
        buffers = (Count((Term((Factor("2", 2), c)),), "running mean and variance") if a["track_running_stats"]
                   else Count((), "no running statistics"))
        return Counts(params, buffers)

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        # torch runs it as a batch norm of the N*C channels: the mean and 1/std per channel, and the
        # per-image copies (Tensor.repeat) of the weight and the running statistics it passes on
        c = xs[0][0]
        return as_int(2 * c + (c if a["affine"] else 0) + (2 * c if a["track_running_stats"] else 0))

    def scratch(self, a, xs, y, itemsize, training):
        # at inference: the mean and 1/std (or the repeated running statistics), and the repeated
        # weight and bias
        c = xs[0][0]
        return 0 if training else as_int((2 * c + (2 * c if a["affine"] else 0)) * itemsize)

    def torch(self, a, xs, y):
        return [({2: "InstanceNorm1d", 4: "InstanceNorm3d"}.get(len(xs[0]), "InstanceNorm2d"), {"num_features": xs[0][0], "eps": a["eps"], "momentum": a["momentum"],
                                    "affine": a["affine"], "track_running_stats": a["track_running_stats"]})]

    torch_ops = rank_ops("InstanceNorm2d")

    def from_torch(self, op, kw, xs, y):
        if not torch_rank(op, xs[0]) or kw.get("momentum") is None:
            return None
        return {"eps": kw["eps"], "momentum": kw["momentum"], "affine": bool(kw["affine"]),
                "track_running_stats": bool(kw["track_running_stats"])}


@register
class GRN(Pointwise):
    torch_module = "norm_torch"  # its own nn.Module classes
    name = "grn"
    doc = (
        "Global response normalisation (ConvNeXt-V2; timm's GlobalResponseNorm): x + bias + weight * x * "
        "N(x), N the per-channel L2 norm over positions divided by its mean over channels (+ eps). "
        "weight and bias of shape C, initialised to 0, as timm's, so its state_dict loads."
    )
    keys = (Key("eps", "float", 1e-6, "epsilon", lo=0, lo_open=True),)
    formulas = {"shape": "unchanged", "params": "2 * C (weight and bias)", "buffers": "0", "macs": "0 (not a conv or linear)"}

    def out(self, a, xs):
        return hw(xs[0], self.name)

    def count(self, a, xs, y):
        return 2 * xs[0][0], 0

    def formula(self, a, xs, y):
        return Counts(Count((Term((Factor("2", 2), Factor("C", xs[0][0]))),), "weight and bias"))

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        # backward keeps x * N(x) (the map) and, per channel, the norm and N(x); the mean + eps (one value)
        return as_int(prod(y) + 2 * xs[0][0] + 1)

    def scratch(self, a, xs, y, itemsize, training):
        # x * N(x) and the sum beside it at their peak, with the norm and N(x) per channel
        return 0 if training else as_int((prod(y) + 2 * xs[0][0]) * itemsize)

    def torch(self, a, xs, y):
        return [("GlobalResponseNorm", {"dim": xs[0][0], "eps": a["eps"]})]

    torch_ops = ("GlobalResponseNorm", "timm.layers.grn.GlobalResponseNorm")
    channels_last = True  # timm's module on a channels-last map (its channels_last=True) is the same norm

    def from_torch(self, op, kw, xs, y):
        return {"eps": kw["eps"]} if len(xs[0]) == 3 else None


@register
class L2Norm(Pointwise):
    torch_module = "norm_torch"  # its own nn.Module classes
    name = "l2norm"
    doc = (
        "L2 normalisation over the channels at each position (torch.nn.functional.normalize(x, p=2, dim=1): "
        "x / max(||x||_2, eps), the norm over C at each position; SSD's L2Norm before its learnable "
        "per-channel scale). No parameters: SSD's scale (a bare parameter of shape C, its `scale_weight`) "
        "is a `layer_scale: {bare: true, vector: true}` after it, named after that parameter, so its "
        "state_dict loads. MACs 0, as for the other norms (FlopCounterMode counts 0 for normalize)."
    )
    keys = (Key("eps", "float", 1e-12, "the smallest norm divided by (torch's default 1e-12)", lo=0, lo_open=True),)
    formulas = {"shape": "unchanged", "params": "0", "buffers": "0", "macs": "0 (not a conv or linear)"}

    def saves(self, a, training):
        return ("input",)

    def workspace(self, a, xs, y):
        # (any rank; a flat vector: one norm per image, the empty product 1)
        # backward keeps the norm per position and its clamp (the divisor), each 1 x H x W
        return as_int(2 * prod(xs[0][1:]))

    def scratch(self, a, xs, y, itemsize, training):
        # the norm per position, then its clamp (the divisor, 1 x H x W) beside the output while it
        # divides: one such map at the peak, as norm and clamp together (before the output) are
        # never more than the divisor and the output (C >= 1); in training both are kept (workspace)
        return 0 if training else as_int(prod(xs[0][1:]) * itemsize)

    def torch(self, a, xs, y):
        return [("L2Norm", {"eps": a["eps"]})]

    torch_ops = ("normalize", "L2Norm")

    def from_torch(self, op, kw, xs, y):
        if op == "L2Norm":
            return {"eps": kw["eps"]}
        if len(xs) != 1 or kw.get("out") is not None:
            return None
        p, dim = kw.get("p", 2.0), kw.get("dim", 1)
        if float(p) != 2.0 or dim not in (1, 1 - len(xs[0]) - 1):
            return None
        return {"eps": float(kw.get("eps", 1e-12))}
