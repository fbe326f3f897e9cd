"""Independent hand computations of the CAM equations, for the tests (never imported by the library).

Tiny networks are split by hand into ``features`` (up to the target layer) and ``head`` (after it);
activations A and gradients g = dY^c/dA come from plain autograd on that split, and every equation
of DESIGN.md is written out here again, directly from the formulas, in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyClassifier(nn.Module):
    """conv-ReLU-conv-ReLU ('features', the target layer) -> global average pool -> linear."""

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        pool = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[spatial_dims]
        self.features = nn.Sequential(
            conv(in_channels, 4, 3, padding=1), nn.ReLU(), conv(4, 6, 3, stride=2, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(pool(1), nn.Flatten(), nn.Linear(6, classes))
        self.double().eval()

    def forward(self, x):
        return self.head(self.features(x))


class TinySegmenter(nn.Module):
    """conv-ReLU ('encoder') -> strided conv-ReLU ('bottleneck', target) -> upsample -> 1x1 conv to K logits."""

    def __init__(self, spatial_dims: int = 2, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        self.encoder = nn.Sequential(conv(1, 4, 3, padding=1), nn.ReLU())
        self.bottleneck = nn.Sequential(conv(4, 5, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(5, classes, 1))
        self.double().eval()

    def forward(self, x):
        return self.decoder(self.bottleneck(self.encoder(x)))


def spatial_axes(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, t.ndim))


def activations_and_gradients(features, head, x, classes, region=None):
    """A, g and the logits by plain autograd on a hand-split network."""
    a = features(x).detach().requires_grad_(True)
    logits = head(a)
    rows = torch.arange(x.shape[0])
    y = logits[rows, classes]
    if region is not None:
        y = (y * region).flatten(1).sum(1)
    (g,) = torch.autograd.grad(y.sum(), a)
    return a.detach(), g, logits.detach()


def normalise(m: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(m)
    for n in range(m.shape[0]):
        lo, hi = m[n].min(), m[n].max()
        if hi > lo:
            out[n] = (m[n] - lo) / (hi - lo)
    return out


def channel_sum(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """sum_k w[n, k] A[n, k]."""
    return torch.stack([sum(w[n, k] * a[n, k] for k in range(a.shape[1])) for n in range(a.shape[0])])


def grad_cam(a, g):
    return F.relu(channel_sum(g.mean(dim=spatial_axes(g)), a))


def hires_cam(a, g):
    return F.relu((g * a).sum(1))


def grad_cam_pp(a, g):
    weights = torch.zeros(a.shape[:2], dtype=a.dtype)
    for n in range(a.shape[0]):
        for k in range(a.shape[1]):
            gk, ak = g[n, k], a[n, k]
            denominator = 2 * gk**2 + ak.sum() * gk**3
            alpha = torch.where(
                (gk != 0) & (denominator != 0), gk**2 / torch.where(denominator == 0, 1.0, denominator), 0.0
            )
            weights[n, k] = (alpha * F.relu(gk)).sum()
    return F.relu(channel_sum(weights, a))


def xgrad_cam(a, g):
    weights = torch.zeros(a.shape[:2], dtype=a.dtype)
    for n in range(a.shape[0]):
        for k in range(a.shape[1]):
            total = a[n, k].sum()
            weights[n, k] = (a[n, k] * g[n, k]).sum() / total if total != 0 else 0.0
    return F.relu(channel_sum(weights, a))


def layer_cam(a, g):
    return F.relu((F.relu(g) * a).sum(1))


def zhou_cam(a, fc_weight, classes):
    return F.relu(channel_sum(fc_weight[classes], a))


def eigen_cam(a):
    out = []
    for n in range(a.shape[0]):
        matrix = a[n].reshape(a.shape[1], -1).T.numpy()
        matrix = matrix - matrix.mean(axis=0)
        import numpy as np

        _, _, vt = np.linalg.svd(matrix, full_matrices=False)
        projection = matrix @ vt[0]
        if abs(projection.min()) > abs(projection.max()):
            projection = -projection
        out.append(torch.from_numpy(projection).reshape(a.shape[2:]))
    return F.relu(torch.stack(out))


def resize(m: torch.Tensor, size, align_corners=False) -> torch.Tensor:
    mode = "bilinear" if m.ndim == 3 else "trilinear"
    return F.interpolate(m[:, None], size=tuple(size), mode=mode, align_corners=align_corners)[:, 0]


def score_cam(model, x, a, classes, channels=None, region=None):
    """Score-CAM by the loop of Syed et al. 2023 eqs. 6-9, one masked input at a time."""
    weights = torch.zeros(a.shape[:2], dtype=a.dtype)
    for n in range(a.shape[0]):
        ks = list(range(a.shape[1])) if channels is None else [int(k) for k in channels[n]]
        scores = []
        for k in ks:
            up = resize(a[n : n + 1, k], x.shape[2:], align_corners=True)[0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else torch.zeros_like(up)
            with torch.no_grad():
                logits = model(x[n : n + 1] * mask)
            score = logits[0, classes[n]]
            scores.append(score if region is None else (score * region[n]).sum())
        weights[n, ks] = torch.softmax(torch.stack(scores), dim=0)
    return F.relu(channel_sum(weights, a))


def fuse(maps, size, gamma=2.0):
    """Syed et al. 2023 eq. 13: shallow layers tanh(gamma M / max M), the deepest M / max M, element-wise max."""
    scaled = []
    for i, m in enumerate(maps):
        up = resize(m, size)
        peak = up.flatten(1).max(1).values.reshape(-1, *([1] * (up.ndim - 1)))
        ratio = torch.where(peak > 0, up / torch.where(peak > 0, peak, 1.0), 0.0)
        scaled.append(torch.tanh(gamma * ratio) if i < len(maps) - 1 else ratio)
    return torch.stack(scaled).max(0).values
