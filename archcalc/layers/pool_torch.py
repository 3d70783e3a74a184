"""The nn.Module classes of the pools (explicit -inf padding, ceil-mode crops, the receptive-field probe's max-pool): imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn


class NegInfPad2d(nn.Module):
    """Pad with -inf (before a max-pool); padding is (left, right, top, bottom)."""

    def __init__(self, padding):
        super().__init__()
        self.padding = tuple(padding)

    def forward(self, x):
        return F.pad(x, self.padding, value=float("-inf"))

    def extra_repr(self):
        return f"padding={self.padding}"


class Crop2d(nn.Module):
    """Keep the first size[0] rows and size[1] columns."""

    def __init__(self, size):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x):
        return x[:, :, : self.size[0], : self.size[1]]

    def extra_repr(self):
        return f"size={self.size}"


class ConstantPadNd(nn.Module):
    """Pad a map of any rank with a constant (-inf before a 1-D or 3-D max-pool); padding as F.pad takes it."""

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding, self.value = tuple(padding), value

    def forward(self, x):
        return F.pad(x, self.padding, value=self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class CropNd(nn.Module):
    """Keep the first size[i] positions of each spatial axis (a map of any rank)."""

    def __init__(self, size):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x):
        return x[(slice(None), slice(None)) + tuple(slice(0, s) for s in self.size)]

    def extra_repr(self):
        return f"size={self.size}"


class ProbeSumPool(nn.Module):
    """A max-pool's geometry with every window position weighted 1 (dilation and ceil mode too)."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        super().__init__()
        self.k, self.s, self.p, self.d, self.ceil_mode = kernel_size, stride, padding, dilation, ceil_mode

    def forward(self, x):
        k, s, pad, d = self.k, self.s, self.p, self.d
        with torch.device("meta"):
            want = F.max_pool2d(torch.empty(x.shape, device="meta"), k, s, pad, d, self.ceil_mode).shape[2:]
        x = F.pad(x, (pad[1], pad[1] + s[1] * 2, pad[0], pad[0] + s[0] * 2))
        w = torch.ones(x.shape[1], 1, *k, dtype=x.dtype, device=x.device)
        y = F.conv2d(x, w, stride=s, dilation=d, groups=x.shape[1])
        return y[:, :, : want[0], : want[1]]
