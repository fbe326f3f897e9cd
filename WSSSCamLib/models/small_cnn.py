"""A small 2D/3D convolutional classifier with a CAM-friendly head (global pooling + one linear layer)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class SmallCNN(nn.Module):
    """Stages of Conv-BN-ReLU (each stage halving the resolution but the first), global average
    pooling, dropout, linear.

    Input N x ``in_channels`` x H x W (``spatial_dims=2``) or N x ``in_channels`` x D x H x W (3);
    output N x ``num_classes`` logits. ``convs_per_stage`` 3x3 convolutions per stage (the first
    with stride 2 from the second stage on). Stage ``i`` is the module ``features.<i>``; the default
    CAM target layer is ``features`` (the last stage's output, 1/2^(stages-1) of the input size).
    ``dilate_last``: the last stage keeps its input's resolution (no stride) and widens its receptive
    field with dilation 2 instead, so the CAM grid is twice as fine (1/2^(stages-2)) - the dilated
    last stage of DeepLab (Chen et al. 2018) applied to a CAM classifier.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        widths: Sequence[int] = (16, 32, 64),
        convs_per_stage: int = 1,
        dropout: float = 0.0,
        dilate_last: bool = False,
    ) -> None:
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        norm = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[spatial_dims]
        pool = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[spatial_dims]
        stages: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(widths):
            layers: list[nn.Module] = []
            last = index == len(widths) - 1
            for repeat in range(convs_per_stage):
                stride = 2 if index > 0 and repeat == 0 and not (last and dilate_last) else 1
                dilation = 2 if last and dilate_last else 1
                layers += [
                    conv(previous, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                    norm(width),
                    nn.ReLU(inplace=True),
                ]
                previous = width
            stages.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*stages)
        self.pool = pool(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(previous, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.pool(self.features(x)).flatten(1)))
