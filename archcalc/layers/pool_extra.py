"""Adaptive and global max pooling (a file of their own beside pool.py)."""

from __future__ import annotations

from ..expr import as_int
from .base import same_channels, rank_ops, torch_rank, Key, LayerType, REQUIRED, pair_of, pair_text, prod, register, spatial, torch_nd
from .pool import AdaptiveAvgPool, WholeMap


@register
class AdaptiveMaxPool(LayerType):
    channel_reads = same_channels  # each channel its own
    name = "adaptive_maxpool"
    doc = (
        "Adaptive max pooling to a fixed output size (torch.nn.AdaptiveMaxPool2d; 1d / 3d on 1-D / 3-D maps): "
        "output o takes the "
        "maximum of inputs floor(o I / O) .. ceil((o + 1) I / O) - 1, the windows of adaptive_avgpool. "
        "A new tensor; torch makes int64 indices beside it (kept for backward)."
    )
    keys = (Key("size", "pair", REQUIRED, "output size"),)
    formulas = {"shape": "C x size_h x size_w", "params": "0", "macs": "0 (comparisons are not MACs)"}

    def out(self, a, xs):
        x = spatial(xs[0], self.name)
        from .conv import _rank_check

        _rank_check(self.name, a, x)
        return (x[0],) + tuple(a["size"])

    def details(self, a, xs, y):
        return pair_text(a["size"], both=True)

    def size_formula(self, a, xs, y):
        return AdaptiveAvgPool.size_formula(self, a, xs, y)

    def window(self, a, xs, y):
        return AdaptiveAvgPool.window(self, a, xs, y)

    def size_dependent(self, a):
        return True

    def saves(self, a, training):
        return ("input", "indices")  # as torch's adaptive_max_pool2d backward keeps them

    def scratch(self, a, xs, y, itemsize, training):
        return 0 if training else as_int(prod(y) * 8)  # the int64 indices, made even under no_grad

    def torch(self, a, xs, y):
        return [(torch_nd("AdaptiveMaxPool2d", len(xs[0]) - 1), {"output_size": tuple(a["size"])})]

    def probe(self, a, xs, y, collapse):
        return [(torch_nd("AdaptiveAvgPool2d", len(xs[0]) - 1), {"output_size": tuple(a["size"])})]  # every window position weighted

    torch_ops = rank_ops("AdaptiveMaxPool2d", "adaptive_max_pool2d")

    def from_torch(self, op, kw, xs, y):
        size = kw["output_size"]
        if not torch_rank(op, xs[0]) or kw.get("return_indices"):
            return None
        if isinstance(size, (tuple, list)) and None in size:
            size = tuple(y[1:])
        return {"size": pair_of(size)}


@register
class GlobalMaxPool(WholeMap):
    name = "global_maxpool"
    doc = (
        "Maximum over all spatial positions: C x H x W to C x 1 x 1 (torch.amax over H and W, keepdim; every "
        "axis of a 1-D or 3-D map; "
        "timm's SelectAdaptivePool2d('max') with flatten off). A new tensor."
    )
    formulas = {"shape": "C x 1 x 1", "params": "0", "macs": "0 (comparisons are not MACs)"}

    def saves(self, a, training):
        return ("input", "output")  # amax's backward compares the input with the maximum

    def torch(self, a, xs, y):
        return [("GlobalMaxPool", {})] if len(xs[0]) == 3 else [("GlobalMaxPoolNd", {})]

    torch_module = "pool_extra_torch"  # its own nn.Module classes

    def probe(self, a, xs, y, collapse):
        return [("AdaptiveAvgPool2d", {"output_size": (1, 1)})]

    torch_ops = ("amax", "GlobalMaxPool")

    def from_torch(self, op, kw, xs, y):
        if op == "GlobalMaxPool":
            return {}
        dims = kw.get("dim")
        dims = [dims] if isinstance(dims, int) else list(dims or ())
        n = len(xs[0])
        if n not in (2, 3, 4) or sorted(d % (n + 1) for d in dims) != list(range(2, n + 1)):
            return None
        return {} if kw.get("keepdim") else [("global_maxpool", {}), ("flatten", {})]
