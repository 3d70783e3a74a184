"""The nn.Module classes of convolutions and channel_linear (ProbeSpatial*: the receptive-field probe's one-channel geometry): imported only by the builder
(archcalc.layers.base.torch_classes), never by the registry. Each class is self-contained (torch, F,
nn): ``archcalc export --to torch`` copies its source into the file it writes."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # torch warns at import when numpy is absent; irrelevant here
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn


class ChannelLinear(nn.Linear):
    """nn.Linear over the channels at every position of an N x C x H x W map (its weight out x in,
    as ConvNeXt's pointwise layers, which apply nn.Linear to the channels-last tensor), run as a
    1x1 convolution."""

    def forward(self, x):
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


class ProbeSpatialConv(nn.Module):
    """A convolution's geometry on one channel: sum the input channels, then a constant kernel.

    The receptive field depends only on the geometry, so every conv of the linearised network can
    work on channel sums (grouped and depthwise convs included: the measured output position sums
    all its channels, so the union over groups is what is measured either way)."""

    def __init__(self, kernel_size, stride, padding, dilation):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def forward(self, x):
        kh, kw = self.kernel_size
        w = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
        return F.conv2d(x.sum(1, keepdim=True), w, None, self.stride, self.padding, self.dilation)


class ProbeSpatialConvTranspose(nn.Module):
    """A transposed convolution's geometry on one channel (channel sums, a constant kernel)."""

    def __init__(self, kernel_size, stride, padding, output_padding, dilation):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.output_padding, self.dilation = output_padding, dilation

    def forward(self, x):
        kh, kw = self.kernel_size
        w = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
        return F.conv_transpose2d(x.sum(1, keepdim=True), w, None, self.stride, self.padding, self.output_padding,
                                  1, self.dilation)


class StdConv2d(nn.Conv2d):
    """A weight-standardised convolution (timm's StdConv2d): each output channel's filter normalised
    (a batch norm of the weight) before F.conv2d."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 eps=1e-6, pad=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        self.eps, self.pad = eps, pad  # pad: (left, right, top, bottom) zeros first (TF 'SAME', as timm's *Same)

    def forward(self, x):
        if self.pad:
            x = F.pad(x, self.pad)
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0,
                              eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ScaledStdConv2d(nn.Conv2d):
    """A scaled weight-standardised convolution (timm's ScaledStdConv2d, NF-Nets): the standardised
    filter times a learnable gain per output channel and gamma / sqrt(fan-in)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 gamma=1.0, eps=1e-6, gain_init=1.0, pad=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        self.gamma, self.eps, self.pad = gamma, eps, pad  # pad: (left, right, top, bottom) zeros first
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.gain = nn.Parameter(torch.full((self.out_channels, 1, 1, 1), float(gain_init)))

    def forward(self, x):
        if self.pad:
            x = F.pad(x, self.pad)
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                              weight=(self.gain * self.scale).view(-1), training=True, momentum=0.0,
                              eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
