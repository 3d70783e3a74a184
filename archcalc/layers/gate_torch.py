"""The nn.Module classes of eca_conv and context_pool: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn


class EcaConv(nn.Module):
    """ECA's 1-D conv over the channels of an N x C x 1 x 1 map: the map viewed as N x 1 x C,
    ``weight`` of shape 1 x 1 x kernel (torch.nn.Conv1d(1, 1, kernel, padding=(kernel - 1) // 2,
    bias=False)'s, so timm's ``attn.conv.weight`` loads), viewed back."""

    def __init__(self, kernel):
        super().__init__()
        self.padding = (kernel - 1) // 2
        self.weight = nn.Parameter(torch.empty(1, 1, kernel))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Conv1d's initialisation

    def forward(self, x):
        return F.conv1d(x.view(x.shape[0], 1, -1), self.weight, None, 1, self.padding).view(x.shape)


class ContextPool(nn.Module):
    """GCNet's context modelling on an N x C x H x W map (timm's GlobalContext with use_attn): a 1x1
    conv to one logit per position (``weight`` 1 x C x 1 x 1, ``bias`` 1: timm's ``conv_attn``), a
    softmax over the positions, the map's sum weighted by it: N x C x 1 x 1. The same ops as timm's."""

    def __init__(self, channels, bias=True):
        super().__init__()
        conv = nn.Conv2d(channels, 1, 1, bias=bias)  # nn.Conv2d's initialisation
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x):
        b, c, h, w = x.shape
        attn = F.conv2d(x, self.weight, self.bias).reshape(b, 1, h * w)
        attn = F.softmax(attn, dim=-1).unsqueeze(3)
        return (x.reshape(b, c, h * w).unsqueeze(1) @ attn).view(b, c, 1, 1)
