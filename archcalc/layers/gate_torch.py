"""The nn.Module classes of eca_conv: imported only by the builder
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
