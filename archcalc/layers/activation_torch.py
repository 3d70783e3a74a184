"""The nn.Module classes of scale and stochastic_depth: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    from torch import nn


class Scale(nn.Module):
    """Multiply by a constant (Inception-ResNet's residual scaling)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class StochasticDepth(nn.Module):
    """Drops the whole input per image (mode row) or per batch (mode batch) in training and rescales
    by 1 / (1 - p); an identity at inference (as torchvision.ops.StochasticDepth)."""

    def __init__(self, p, mode="row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


class RadixSoftmax(nn.Module):
    """A softmax across the radix (timm's RadixSoftmax), the input's shape kept: channels are
    cardinality x radix x rest; radix 1 is a sigmoid."""

    def __init__(self, radix, cardinality=1):
        super().__init__()
        self.radix, self.cardinality = radix, cardinality

    def forward(self, x):
        if self.radix == 1:
            return torch.sigmoid(x)
        batch = x.size(0)
        y = x.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
        return torch.softmax(y, dim=1).reshape(x.shape)

    def extra_repr(self):
        return f"radix={self.radix}, cardinality={self.cardinality}"
