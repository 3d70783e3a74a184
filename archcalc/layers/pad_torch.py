"""The nn.Module classes of pad and blur_pool: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn


class Pad(nn.Module):
    """F.pad of the spatial axes; padding as F.pad takes it, (left, right, top, bottom) in 2-D."""

    def __init__(self, padding, mode="constant", value=0.0):
        super().__init__()
        self.padding, self.mode, self.value = tuple(padding), mode, value

    def forward(self, x):
        if self.mode == "constant":
            return F.pad(x, self.padding, value=self.value)
        return F.pad(x, self.padding, mode=self.mode)

    def extra_repr(self):
        return f"padding={self.padding}, mode={self.mode}"


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling (timm's BlurPool2d): pad, then a depthwise conv with a fixed binomial
    filter held in a non-persistent buffer ``filt`` (channels x 1 x f x f, or 1 x 1 x f x f)."""

    def __init__(self, channels=None, filt_size=3, stride=2, pad_mode="reflect"):
        super().__init__()
        self.channels, self.filt_size, self.stride, self.pad_mode = channels, filt_size, stride, pad_mode
        self.padding = [((stride - 1) + (filt_size - 1)) // 2] * 4
        row = [1.0]
        for _ in range(filt_size - 1):  # the binomial coefficients of (1 + x)^(f - 1)
            row = [a + b for a, b in zip(row + [0.0], [0.0] + row)]
        coeffs = torch.tensor(row) / (2 ** (filt_size - 1))
        filt = (coeffs[:, None] * coeffs[None, :])[None, None, :, :]
        if channels is not None:
            filt = filt.repeat(channels, 1, 1, 1)
        self.register_buffer("filt", filt, persistent=False)

    def forward(self, x):
        x = F.pad(x, self.padding, mode=self.pad_mode)
        channels = x.shape[1] if self.channels is None else self.channels
        weight = self.filt.expand(channels, 1, self.filt_size, self.filt_size) if self.channels is None else self.filt
        return F.conv2d(x, weight, stride=self.stride, groups=channels)

    def extra_repr(self):
        return f"channels={self.channels}, filt_size={self.filt_size}, stride={self.stride}, pad_mode={self.pad_mode}"


class ProbeDepthwise(nn.Module):
    """A fixed-filter depthwise convolution's geometry on every channel (the RF probe)."""

    def __init__(self, kernel_size, stride, padding, dilation, channels):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation, self.channels = kernel_size, stride, padding, dilation, channels

    def forward(self, x):
        kh, kw = self.kernel_size
        w = torch.full((self.channels, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.channels)
