"""The nn.Module classes of channels (a slice) and channel_shuffle: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    from torch import nn


class ChannelSlice(nn.Module):
    """Channels start .. stop - 1 of the input (a view)."""

    def __init__(self, start, stop):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start : self.stop]

    def extra_repr(self):
        return f"start={self.start}, stop={self.stop}"


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle (torchvision's channel_shuffle)."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w)
        return torch.transpose(x, 1, 2).contiguous().view(n, -1, h, w)

    def extra_repr(self):
        return f"groups={self.groups}"


class SpaceToDepth(nn.Module):
    """Space to depth with the block position ahead of the channel (timm's SpaceToDepth, TResNet's
    stem; TensorFlow's order): N x C x H x W to N x (r*r*C) x H/r x W/r."""

    def __init__(self, block_size=4):
        super().__init__()
        self.bs = block_size

    def forward(self, x):
        n, c, h, w = x.size()
        x = x.view(n, c, h // self.bs, self.bs, w // self.bs, self.bs)
        x = x.permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(n, c * self.bs * self.bs, h // self.bs, w // self.bs)

    def extra_repr(self):
        return f"block_size={self.bs}"


class PixelShuffleNd(nn.Module):
    """nn.PixelShuffle on a map of any rank (N x C r^n x S_1 .. S_n to N x C x S_1 r .. S_n r): output
    channel c takes input channels c r^n .. c r^n + r^n - 1, their index the offsets within the
    block, first axis slowest (torch's order in 2-D)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.r = upscale_factor

    def forward(self, x):
        n, r, sizes = x.dim() - 2, self.r, x.shape[2:]
        c = x.shape[1] // r ** n
        x = x.reshape(x.shape[0], c, *([r] * n), *sizes)
        x = x.permute(0, 1, *[i for k in range(n) for i in (2 + n + k, 2 + k)])
        return x.reshape(x.shape[0], c, *[s * r for s in sizes])

    def extra_repr(self):
        return f"upscale_factor={self.r}"


class PixelUnshuffleNd(nn.Module):
    """nn.PixelUnshuffle on a map of any rank: the inverse of :class:`PixelShuffleNd`."""

    def __init__(self, downscale_factor):
        super().__init__()
        self.r = downscale_factor

    def forward(self, x):
        n, r, c, sizes = x.dim() - 2, self.r, x.shape[1], x.shape[2:]
        x = x.reshape(x.shape[0], c, *[v for s in sizes for v in (s // r, r)])
        x = x.permute(0, 1, *[3 + 2 * k for k in range(n)], *[2 + 2 * k for k in range(n)])
        return x.reshape(x.shape[0], c * r ** n, *[s // r for s in sizes])

    def extra_repr(self):
        return f"downscale_factor={self.r}"
