"""Channel and layout bookkeeping: flatten, channel slices, channel shuffle."""

from __future__ import annotations

from fractions import Fraction

from ..expr import as_int
from .base import REQUIRED, Axis, Key, LayerType, Resample, ShapeError, Text, concrete, hw, prod, register, spatial


@register
class Flatten(LayerType):
    name = "flatten"
    doc = "C x H x W to a flat vector of C*H*W (a view: no new tensor)."
    view = True
    grad_alias = True  # backward reshapes the gradient (a view)
    formulas = {"shape": "C*H*W", "params": "0", "macs": "0"}

    def out(self, a, xs):
        return (prod(xs[0]),)

    def size_formula(self, a, xs, y):
        return Text("output size: " + " * ".join("{}" for _ in xs[0]) + " = {} features", tuple(xs[0]) + (y[0],))

    def torch(self, a, xs, y):
        return [("Flatten", {})]

    torch_ops = ("Flatten", "flatten", "view", "reshape")

    def from_torch(self, op, kw, xs, y):
        # torch.flatten(x, 1), nn.Flatten(), x.view(n, -1): a flat vector of everything per image
        if op[0].islower() and op != "flatten" or kw.get("start_dim", 1) == 1 and kw.get("end_dim", -1) == -1:
            return {} if len(y) == 1 and y[0] == prod(xs[0]) else None
        return None


@register
class Channels(LayerType):
    torch_module = "channel_torch"  # its own nn.Module classes
    name = "channels"
    doc = (
        "A slice of the channels, x[:, start:stop] (a view: no new tensor). ShuffleNetV2's chunk is "
        "two of them, one per branch of a concat."
    )
    keys = (
        Key("start", "count", 0, "first channel kept"),
        Key("stop", "size", None, "one past the last channel kept (default: all)"),
    )
    formulas = {"shape": "(stop - start) x H x W", "params": "0", "macs": "0"}
    view = True
    narrows_channels = True  # its field is the kept channels' (docs/conventions.md, 'Channels')

    def channel_reads(self, a, xs, y, lo, hi):
        return [(0, a["start"] + lo, a["start"] + hi, None)]

    def out(self, a, xs):
        x = xs[0]
        stop = x[0] if a["stop"] is None else a["stop"]
        if concrete(stop, a["start"], x[0]) and not 0 <= a["start"] < stop <= x[0]:
            raise ShapeError(
                f"channels {a['start']}:{stop} are not a slice of the input's {x[0]} channels",
                hint=f"0 <= start < stop <= {x[0]}",
            )
        return (stop - a["start"],) + tuple(x[1:])

    def torch(self, a, xs, y):
        return [("ChannelSlice", {"start": a["start"], "stop": a["start"] + y[0]})]

    torch_ops = ("chunk", "split", "ChannelSlice")

    def from_torch(self, op, kw, xs, y):
        # one part of x.chunk(k, dim=1) / x.split(n, dim=1) (``index``: which part)
        x = xs[0]
        if op == "ChannelSlice":
            return {"start": kw["start"], "stop": kw["stop"]}
        if len(x) != 3 or kw.get("dim", 0) not in (1, -3):
            return None
        if op == "chunk":
            sizes = [-(-x[0] // kw["chunks"])] * kw["chunks"]
        else:
            n = kw["split_size_or_sections"] if "split_size_or_sections" in kw else kw["split_size"]
            sizes = list(n) if isinstance(n, (list, tuple)) else [n] * (-(-x[0] // n))
        start = sum(sizes[: kw["index"]])
        return {"start": start, "stop": start + y[0]}

    def probe(self, a, xs, y, collapse):
        return [("Identity", {})] if collapse else self.torch(a, xs, y)


@register
class ChannelShuffle(LayerType):
    torch_module = "channel_torch"  # its own nn.Module classes
    name = "channel_shuffle"
    doc = (
        "ShuffleNet's channel shuffle: view as groups x C/groups, transpose, flatten back "
        "(torchvision's channel_shuffle; a new tensor, the transposed copy, except with 1 group or "
        "1 channel per group, where it is a view)."
    )
    keys = (Key("groups", "size", 2, "groups"),)
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def out(self, a, xs):
        x = hw(xs[0], self.name)
        if concrete(x[0], a["groups"]) and x[0] % a["groups"]:
            raise ShapeError(f"channel_shuffle: {x[0]} channels are not divisible by groups={a['groups']}")
        return x

    def channel_reads(self, a, xs, y, lo, hi):
        # output channel k is input channel (k mod g) * C/g + k div g: each residue's channels are
        # consecutive inputs
        g, per = a["groups"], xs[0][0] // a["groups"]
        reads = []
        for r in range(g):
            ks = range(lo + (r - lo) % g, hi, g)  # the outputs of residue r
            if ks:
                reads.append((0, r * per + ks[0] // g, r * per + ks[-1] // g + 1, None))
        return reads

    def new_tensor(self, a, xs, y, training):
        # view, transpose, contiguous, view: with one group, or one channel per group, the
        # transpose swaps a dimension of size 1, the result is still contiguous and .contiguous()
        # copies nothing: a view of the input (a symbolic channel count is counted as a copy)
        g, c = a["groups"], xs[0][0]
        return not (g == 1 or (concrete(c, g) and g == c))

    def torch(self, a, xs, y):
        return [("ChannelShuffle", {"groups": a["groups"]})]

    torch_ops = ("channel_shuffle", "ChannelShuffle")

    def from_torch(self, op, kw, xs, y):
        return {"groups": kw["groups"]}

    def probe(self, a, xs, y, collapse):
        return [("Identity", {})] if collapse else self.torch(a, xs, y)


@register
class PixelShuffle(LayerType):
    name = "pixel_shuffle"
    doc = (
        "Depth to space (torch.nn.PixelShuffle; on a 1-D or 3-D map C/r or C/r^3 channels, every axis times r, "
        "torch's channel order generalised): C x H x W to C/r^2 x rH x rW, each r x r block of the "
        "output from r^2 consecutive channels (sub-pixel convolution's upsampling). A new tensor."
    )
    keys = (Key("factor", "size", REQUIRED, "the upscale factor r"),)
    formulas = {"shape": "C/r^2 x H*r x W*r", "params": "0", "macs": "0"}

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        r, n = a["factor"], len(x) - 1
        if concrete(x[0], r) and x[0] % (r ** n):
            raise ShapeError(f"pixel_shuffle: {x[0]} channels are not divisible by factor^{n} = {r ** n}")
        return (as_int(x[0] // (r ** n)),) + tuple(as_int(v * r) for v in x[1:])

    def details(self, a, xs, y):
        return f"x{a['factor']}"

    def window(self, a, xs, y):
        q = Fraction(1, a["factor"])  # output o reads input floor(o / r)
        return tuple(Resample(q) for _ in xs[0][1:])

    narrows_channels = True  # each output position reads one phase's channels

    def channel_reads(self, a, xs, y, lo, hi):
        # output channel c is input channels c r^n + q, q the block phase (row-major over the axes)
        # of the output position: input channel c r^n + q is read at the positions of phase q alone,
        # position o reading input (o - q) / r where r divides o - q (nothing elsewhere)
        r, n = a["factor"], len(xs[0]) - 1
        m = r ** n
        for q in range(m):  # one at a time: the engine counts each against its budget before the next
            phase = [(q // r ** (n - 1 - i)) % r for i in range(n)]
            win = tuple(Resample(Fraction(1, r), Fraction(-p, r), Fraction(-p, r), a_up=True) for p in phase)
            for c in range(lo, hi):
                yield (0, c * m + q, c * m + q + 1, win)

    def torch(self, a, xs, y):
        if len(xs[0]) != 3:  # 1-D, 3-D: torch's channel order, generalised (archcalc's own module)
            return [("PixelShuffleNd", {"upscale_factor": a["factor"]})]
        return [("PixelShuffle", {"upscale_factor": a["factor"]})]

    def probe(self, a, xs, y, collapse):
        if not collapse:
            return self.torch(a, xs, y)
        return [("Upsample", {"scale_factor": float(a["factor"]), "mode": "nearest"})]  # its geometry on one channel

    torch_ops = ("PixelShuffle", "pixel_shuffle")

    def from_torch(self, op, kw, xs, y):
        r = kw.get("upscale_factor")
        return {"factor": int(r)} if isinstance(r, int) and len(xs[0]) == 3 else None


@register
class PixelUnshuffle(LayerType):
    torch_module = "channel_torch"  # its own nn.Module classes
    name = "pixel_unshuffle"
    aliases = ("space_to_depth",)
    doc = (
        "Space to depth (torch.nn.PixelUnshuffle; on a 1-D or 3-D map C*r or C*r^3 channels, every axis "
        "divided by r; `order: blocks` 2-D only): C x H x W to C*r^2 x H/r x W/r, each r x r block "
        "moved into channels (H and W divisible by r). `order: channels` is torch's channel order (each "
        "input channel's r^2 values together); `order: blocks` is TResNet's SpaceToDepth (timm) and "
        "TensorFlow's space_to_depth (each block position's C channels together). A new tensor."
    )
    keys = (
        Key("factor", "size", REQUIRED, "the block size r"),
        Key("order", "choice", "channels", "channels (torch's PixelUnshuffle) or blocks (timm's SpaceToDepth)",
            choices=("channels", "blocks")),
    )
    formulas = {"shape": "C*r^2 x H/r x W/r", "params": "0", "macs": "0"}

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        r = a["factor"]
        if len(x) != 3:
            if a["order"] == "blocks":
                hw(x, self.name + " with order: blocks")
            for i, size in enumerate(x[1:]):
                if concrete(size, r) and size % r:
                    raise ShapeError(f"pixel_unshuffle: axis {i + 1} of {'x'.join(map(str, x[1:]))} ({size}) is not "
                                     f"divisible by factor {r}", hint=f"use an input whose size is a multiple of {r}")
            return (as_int(x[0] * r ** (len(x) - 1)),) + tuple(as_int(v // r) for v in x[1:])
        for size, axis in ((x[1], "height"), (x[2], "width")):
            if concrete(size, r) and size % r:
                raise ShapeError(f"pixel_unshuffle: {axis} {size} is not divisible by factor {r}",
                                 hint=f"use an input whose size is a multiple of {r}")
        return (as_int(x[0] * r * r), as_int(x[1] // r), as_int(x[2] // r))

    def details(self, a, xs, y):
        return f"/{a['factor']}" + (" blocks" if a.get("order") == "blocks" else "")

    def window(self, a, xs, y):
        r = a["factor"]
        return tuple(Axis(r, r, 0, 0) for _ in xs[0][1:])

    def channel_reads(self, a, xs, y, lo, hi):
        # output channel c r^n + q (order: channels; q C + c with order: blocks) is input channel c
        # at block phase q (row-major over the axes): position o reads input o r + q_axis alone
        r, n, c = a["factor"], len(xs[0]) - 1, xs[0][0]
        m = r ** n
        reads = []
        for q in range(m):
            if a["order"] == "blocks":
                first, stop = max(lo - q * c, 0), min(hi - q * c, c)
            else:  # the channels c with lo <= c m + q < hi
                first, stop = max(-((q - lo) // m), 0), min((hi - 1 - q) // m + 1, c)
            if first < stop:
                phase = [(q // r ** (n - 1 - i)) % r for i in range(n)]
                reads.append((0, first, stop, tuple(Axis(1, r, -p, p - r + 1, False) for p in phase)))
        return reads

    def torch(self, a, xs, y):
        if len(xs[0]) != 3:
            return [("PixelUnshuffleNd", {"downscale_factor": a["factor"]})]
        if a["order"] == "blocks":
            return [("SpaceToDepth", {"block_size": a["factor"]})]
        return [("PixelUnshuffle", {"downscale_factor": a["factor"]})]

    def probe(self, a, xs, y, collapse):
        if not collapse:
            return self.torch(a, xs, y)
        r = a["factor"]  # its geometry on one channel: an r x r window at stride r
        return [("ProbeSpatialConv", {"kernel_size": (r, r), "stride": (r, r), "padding": (0, 0), "dilation": (1, 1)})]

    torch_ops = ("PixelUnshuffle", "pixel_unshuffle", "SpaceToDepth", "timm.layers.space_to_depth.SpaceToDepth")

    def from_torch(self, op, kw, xs, y):
        if len(xs[0]) != 3:
            return None
        if op == "SpaceToDepth":
            return {"factor": int(kw.get("block_size", 4)), "order": "blocks"}
        r = kw.get("downscale_factor")
        return {"factor": int(r)} if isinstance(r, int) else None
