"""The nn.Module classes of pad_channels, upsample to another layer's size, crop: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch.nn.functional as F
    from torch import nn


class PadChannels(nn.Module):
    """Take every stride-th row and column, then zero-pad channels (`before` ahead, `after` behind)."""

    def __init__(self, stride, before, after):
        super().__init__()
        self.stride, self.before, self.after = stride, before, after

    def forward(self, x):
        s = self.stride
        if s != 1:
            x = x[:, :, ::s, ::s]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))

    def extra_repr(self):
        return f"stride={self.stride}, before={self.before}, after={self.after}"


class ResizeLike(nn.Module):
    """F.interpolate to the spatial size of a second input (used for its size only)."""

    def __init__(self, mode="nearest", align_corners=None):
        super().__init__()
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x, like):
        return F.interpolate(x, size=like.shape[2:], mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self):
        return f"mode={self.mode}, align_corners={self.align_corners}"


class CentreCrop(nn.Module):
    """Rows top .. top + size[0] - 1 and columns left .. left + size[1] - 1 (a view); further inputs
    (the layer whose size it takes) are ignored."""

    def __init__(self, top, left, size):
        super().__init__()
        self.top, self.left, self.size = top, left, tuple(size)

    def forward(self, x, *like):
        return x[:, :, self.top : self.top + self.size[0], self.left : self.left + self.size[1]]

    def extra_repr(self):
        return f"top={self.top}, left={self.left}, size={self.size}"


class CentreCropNd(nn.Module):
    """A crop of a map of any rank: positions start[i] .. start[i] + size[i] - 1 of each spatial axis
    (a view); further inputs (the layer whose size it takes) are ignored."""

    def __init__(self, start, size):
        super().__init__()
        self.start, self.size = tuple(start), tuple(size)

    def forward(self, x, *like):
        return x[(slice(None), slice(None)) + tuple(slice(b, b + s) for b, s in zip(self.start, self.size))]

    def extra_repr(self):
        return f"start={self.start}, size={self.size}"
