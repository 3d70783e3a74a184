"""The nn.Module classes of global_maxpool: imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    from torch import nn


class GlobalMaxPool(nn.Module):
    """The maximum over H and W, kept as N x C x 1 x 1."""

    def forward(self, x):
        return torch.amax(x, dim=(2, 3), keepdim=True)


class GlobalMaxPoolNd(nn.Module):
    """The maximum over every spatial axis (1-D, 3-D maps), kept as N x C x 1 ... x 1."""

    def forward(self, x):
        return torch.amax(x, dim=tuple(range(2, x.dim())), keepdim=True)
