"""Channel and layout bookkeeping: flatten, channel slices, channel shuffle."""

from __future__ import annotations

from .base import Key, LayerType, ShapeError, Text, concrete, hw, prod, register


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
