"""The nn.Module classes of batchnorm (shift only), layernorm on feature maps, layer_scale: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn


class ChannelBias(nn.Module):
    """A learnable per-channel shift (batch norm with a shift but no scale, as Keras' scale=False)."""

    def __init__(self, num_features):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        return x + self.bias.view(1, -1, *([1] * (x.dim() - 2)))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W map (ConvNeXt's LayerNorm2d)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A learnable per-channel scale, initialised to ``init``: ``gamma`` of shape C, as timm's
    LayerScale2d (so its state_dict loads), broadcast over the positions."""

    def __init__(self, channels, init, dims=3):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels) * init)

    def forward(self, x):
        return x * self.gamma.view(-1, *([1] * (x.dim() - 2)))


class ChannelScale(nn.Module):
    """The input times a C-vector (its second input: a bare parameter of shape C), per channel."""

    def forward(self, x, scale):
        return x * scale.view(-1, *([1] * (x.dim() - 2)))


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's global response normalisation on an N x C x H x W map (timm's
    GlobalResponseNorm with channels_last=False: weight and bias of shape C)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x_g = x.norm(p=2, dim=(2, 3), keepdim=True)
        x_n = x_g / (x_g.mean(dim=1, keepdim=True) + self.eps)
        shape = (1, -1, 1, 1)
        return x + torch.addcmul(self.bias.view(shape), self.weight.view(shape), x * x_n)


class L2Norm(nn.Module):
    """L2 normalisation over the channels at each position: F.normalize(x, p=2, dim=1, eps=eps)."""

    def __init__(self, eps=1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return F.normalize(x, p=2.0, dim=1, eps=self.eps)
