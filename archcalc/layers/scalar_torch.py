"""The nn.Module classes of learnable_affine, star_relu and square: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn


class LearnableAffine(nn.Module):
    """scale * x + bias, ``scale`` and ``bias`` of shape (1,) (timm HGNetV2's LearnableAffineBlock)."""

    def __init__(self, scale=1.0, bias=0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(scale)]))
        self.bias = nn.Parameter(torch.tensor([float(bias)]))

    def forward(self, x):
        return self.scale * x + self.bias


class StarReLU(nn.Module):
    """scale * relu(x) ** 2 + bias, ``scale`` and ``bias`` of shape (1,) (timm's StarReLU)."""

    def __init__(self, scale=1.0, bias=0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(scale)]))
        self.bias = nn.Parameter(torch.tensor([float(bias)]))

    def forward(self, x):
        return self.scale * F.relu(x) ** 2 + self.bias


class Square(nn.Module):
    """x ** 2, elementwise (torch.square)."""

    def forward(self, x):
        return torch.square(x)
