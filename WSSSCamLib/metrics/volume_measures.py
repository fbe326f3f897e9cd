"""Measures of whole-volume masks: each result against a reference (Dice, IoU, volumes in cc), and
agreement (mean pairwise IoU) across CAM methods for a fixed model and across models for a fixed
method (Syed et al. 2023, eqs. 17 and 18, here per volume).

Conventions: masks are boolean K x J x I on one grid (NumPy or torch); two empty masks have
Dice = IoU = 1 (:mod:`WSSSCamLib.metrics.overlap`); a voxel's volume is |det| of the affine's
3 x 3 part in mm^3 (spacing product for an orthogonal grid), 1 cc = 1000 mm^3.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import torch

from .overlap import dice, iou


def _mask(array) -> torch.Tensor:
    """A boolean CPU tensor with a leading sample axis of 1."""
    if isinstance(array, torch.Tensor):
        return array.detach().to("cpu", torch.bool)[None]
    return torch.from_numpy(np.asarray(array, dtype=bool))[None]


def voxel_volume_mm3(ijk_to_ras: np.ndarray) -> float:
    """Volume of one voxel in mm^3: |det| of the 3 x 3 part of the IJK-to-RAS affine."""
    return float(abs(np.linalg.det(np.asarray(ijk_to_ras, dtype=np.float64)[:3, :3])))


def measure_masks(masks: Mapping[str, object], reference, ijk_to_ras: np.ndarray) -> list[dict]:
    """One row per result: ``result``, ``dice``, ``iou`` against ``reference``, ``volume_cc`` (the
    result's), ``reference_cc``, ``voxels``, ``reference_voxels``."""
    ref = _mask(reference)
    cc = voxel_volume_mm3(ijk_to_ras) / 1000.0
    reference_voxels = int(ref.sum())
    rows = []
    for name, mask in masks.items():
        m = _mask(mask)
        if m.shape != ref.shape:
            raise ValueError(f"result '{name}' has shape {tuple(m.shape[1:])}, the reference {tuple(ref.shape[1:])}")
        voxels = int(m.sum())
        rows.append(
            {
                "result": str(name),
                "dice": float(dice(m, ref)[0]),
                "iou": float(iou(m, ref)[0]),
                "volume_cc": voxels * cc,
                "reference_cc": reference_voxels * cc,
                "voxels": voxels,
                "reference_voxels": reference_voxels,
            }
        )
    return rows


def pairwise_iou_rows(masks: Mapping[str, object], agreement: str = "", fixed: str = "") -> list[dict]:
    """IoU of every unordered pair of masks: rows ``agreement``, ``fixed``, ``a``, ``b``, ``iou``."""
    names = list(masks)
    tensors = {n: _mask(masks[n]) for n in names}
    return [
        {"agreement": agreement, "fixed": fixed, "a": a, "b": b, "iou": float(iou(tensors[a], tensors[b])[0])}
        for a, b in combinations(names, 2)
    ]


def _summary(agreement: str, fixed: str, masks: Mapping[str, object]) -> dict:
    pairs = [r["iou"] for r in pairwise_iou_rows(masks)]
    return {
        "agreement": agreement,
        "fixed": fixed,
        "members": ", ".join(masks),
        "pairs": len(pairs),
        "mean_iou": float(np.mean(pairs)),
        "min_iou": float(np.min(pairs)),
        "max_iou": float(np.max(pairs)),
    }


def agreement_rows(results: Mapping[tuple[str, str], object]) -> list[dict]:
    """Agreement of results keyed by ``(model, method)``: for each model with two or more methods a
    row "across methods" (eq. 17), for each method with two or more models a row "across models"
    (eq. 18). Columns: ``agreement``, ``fixed`` (the model or method held fixed), ``members``,
    ``pairs``, ``mean_iou`` (mean pairwise IoU), ``min_iou``, ``max_iou``."""
    models = list(dict.fromkeys(model for model, _ in results))
    methods = list(dict.fromkeys(method for _, method in results))
    rows = []
    for model in models:
        group = {method: results[(model, method)] for method in methods if (model, method) in results}
        if len(group) >= 2:
            rows.append(_summary("across methods", model, group))
    for method in methods:
        group = {model: results[(model, method)] for model in models if (model, method) in results}
        if len(group) >= 2:
            rows.append(_summary("across models", method, group))
    return rows
