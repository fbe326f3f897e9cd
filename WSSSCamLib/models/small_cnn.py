"""A small 2D/3D convolutional classifier with a CAM-friendly head (global pooling + one linear layer)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks (each halving the resolution but the first), global average pooling, linear.

    Input N x ``in_channels`` x H x W (``spatial_dims=2``) or N x ``in_channels`` x D x H x W (3);
    output N x ``num_classes`` logits. The default CAM target layer is ``features`` (the last block).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        norm = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[spatial_dims]
        pool = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[spatial_dims]
        blocks: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            blocks += [conv(previous, width, 3, stride=stride, padding=1, bias=False), norm(width), nn.ReLU(inplace=True)]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.pool = pool(1)
        self.fc = nn.Linear(previous, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))
