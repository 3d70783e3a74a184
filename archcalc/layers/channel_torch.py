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
