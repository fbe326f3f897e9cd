"""Windows along a stack of slices: where a 3D network over a slice recipe's stack of slices (the study's
``segmentation.dims: 3`` U-Nets) is trained and applied (:mod:`WSSSCamLib.training.segmentation`,
:mod:`WSSSCamLib.inference.segmentation`), one rule for both."""

from __future__ import annotations

import math


def window_starts(n: int, depth: int) -> list[int]:
    """First slices of the windows of ``depth`` slices over a stack of ``n`` >= ``depth``: the fewest windows
    whose starts are at most ``depth // 2`` apart, spaced evenly from 0 to ``n - depth`` (rounded)."""
    span = n - depth
    if span <= 0:
        return [0]
    count = math.ceil(span / max(1, depth // 2)) + 1
    return sorted({round(i * span / (count - 1)) for i in range(count)})


__all__ = ["window_starts"]
