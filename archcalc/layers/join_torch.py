"""The nn.Module classes of the joins (concat, add, mean, mul; mul also multiplies by layer_scale's bare parameter): imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    from torch import nn


class Concat(nn.Module):
    """torch.cat of the inputs, in order, along channels (or along ``dim``)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)


class Add(nn.Module):
    """Elementwise sum of the inputs (a residual join)."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mean(nn.Module):
    """Elementwise mean of the inputs (FractalNet's join)."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)


class Mul(nn.Module):
    """Elementwise product of the inputs, with broadcasting (a squeeze-excitation gate)."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Sub(nn.Module):
    """The first input minus the second."""

    def forward(self, a, b):
        return a - b


class Maximum(nn.Module):
    """The elementwise maximum of the inputs, pairwise left to right."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = torch.maximum(out, x)
        return out
