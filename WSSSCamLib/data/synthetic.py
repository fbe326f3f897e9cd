"""Built-in synthetic data: brain-like phantoms with soft-boundary lesions, no download needed.

Each phantom is a head (bright skull ring around a textured brain with two dark ventricles) on a
zero background; a positive phantom also holds one lesion: a bright blob whose boundary is blurred
and irregular, like a FLAIR hyperintensity. Its true mask is where the lesion's boundary function is
inside (d < 1). Works in 2D (H x W) and 3D (D x H x W) alike; arrays are in tensor axis order
(KJI for volumes), intensities roughly in [0, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class SyntheticBatch:
    """``images``: N x 1 x *spatial float32; ``masks``: N x *spatial bool; ``labels``: N int64 (1 = lesion)."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor


def _grid(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Coordinates in [-1, 1] along each axis, broadcast to ``shape``."""
    return np.meshgrid(*[np.linspace(-1.0, 1.0, s, dtype=np.float32) for s in shape], indexing="ij")


def _smooth_field(coords: list[np.ndarray], rng: np.random.Generator, waves: int = 6, scale: float = 3.0) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a sum of random low-frequency cosines."""
    field = np.zeros_like(coords[0])
    for _ in range(waves):
        freq = rng.normal(0.0, scale, size=len(coords))
        phase = rng.uniform(0, 2 * np.pi)
        field += np.cos(sum(f * c for f, c in zip(freq, coords)) + phase)
    return field / np.sqrt(waves)


def _ellipsoid_distance(coords: list[np.ndarray], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return np.sqrt(sum(((c - m) / r) ** 2 for c, m, r in zip(coords, centre, radii)))


def phantom(
    shape: tuple[int, ...], lesion: bool, rng: np.random.Generator, lesion_radii: tuple[float, float] = (0.12, 0.25)
) -> tuple[np.ndarray, np.ndarray]:
    """One phantom image (float32, ``shape``) and its lesion mask (bool; all False without lesion).
    ``lesion_radii``: range of the lesion's semi-axes as fractions of the half field of view."""
    coords = _grid(shape)
    ndim = len(shape)
    head_radii = rng.uniform(0.78, 0.9, size=ndim)
    head = _ellipsoid_distance(coords, np.zeros(ndim), head_radii)
    brain = head < 0.9
    image = np.where((head >= 0.9) & (head < 1.0), 0.85, 0.0).astype(np.float32)
    texture = 0.45 + 0.06 * _smooth_field(coords, rng, scale=4.0)
    image = np.where(brain, texture, image)
    for side in (-1.0, 1.0):
        centre = np.zeros(ndim)
        centre[-1] = side * 0.15
        ventricle = _ellipsoid_distance(coords, centre, np.full(ndim, 0.12) * np.r_[np.ones(ndim - 1) * 1.8, 1.0])
        image = np.where(ventricle < 1.0, image * 0.45, image)
    mask = np.zeros(shape, dtype=bool)
    if lesion:
        centre = rng.uniform(-0.45, 0.45, size=ndim)
        radii = rng.uniform(*lesion_radii, size=ndim)
        distance = _ellipsoid_distance(coords, centre, radii) * (1.0 + 0.18 * _smooth_field(coords, rng, scale=5.0))
        softness = rng.uniform(0.08, 0.2)
        intensity = 1.0 / (1.0 + np.exp(-(1.0 - distance) / softness))
        mask = (distance < 1.0) & brain
        image = image + np.where(brain, rng.uniform(0.25, 0.4) * intensity, 0.0)
    image = image + rng.normal(0.0, 0.03, size=shape).astype(np.float32) * (head < 1.0)
    return image.astype(np.float32), mask


def synthetic_batch(
    count: int, shape: tuple[int, ...] = (64, 64), positive_fraction: float = 0.5, seed: int = 0
) -> SyntheticBatch:
    """``count`` phantoms of ``shape`` (2D or 3D), the first ``round(count * positive_fraction)`` in a
    seeded random order holding a lesion."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(count, dtype=np.int64)
    labels[: int(round(count * positive_fraction))] = 1
    rng.shuffle(labels)
    pairs = [phantom(tuple(shape), bool(label), rng) for label in labels]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return SyntheticBatch(images=images, masks=masks, labels=torch.from_numpy(labels))


def write_synthetic_dataset(
    root: str | Path,
    cases: int = 10,
    shape: tuple[int, int, int] = (16, 64, 64),
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 3.0),
    positive_fraction: float = 0.75,
    seed: int = 0,
    lesion_radii: tuple[float, float] = (0.25, 0.4),
) -> Path:
    """Write a Decathlon-layout dataset of 3D phantoms (K x J x I = ``shape``) under ``root``.

    ``imagesTr/<case>_0000.nii.gz`` (one channel, "phantom"), ``labelsTr/<case>.nii.gz`` (true lesion
    masks), ``dataset.json``, and ``measures.csv`` with a per-case external measure
    (``lesion_ml_reported``: the lesion volume in ml with 10 % multiplicative noise, like a clinical
    report). ``spacing_mm`` is along I, J, K; the geometry is RAS with that spacing and the origin
    at the volume's centre. Every file is written atomically.
    """
    from ..atomic import write_text
    from .readers import write_nifti
    from .volume import Volume

    root = Path(root)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.zeros(cases, dtype=np.int64)
    labels[: int(round(cases * positive_fraction))] = 1
    rng.shuffle(labels)
    affine = np.diag([*spacing_mm, 1.0])
    affine[:3, 3] = -0.5 * (np.asarray(shape[::-1]) - 1) * np.asarray(spacing_mm)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    entries, rows = [], ["case,lesion_ml_reported"]
    for index, label in enumerate(labels):
        case_id = f"phantom_{index:03d}"
        image, mask = phantom(tuple(shape), bool(label), rng, lesion_radii)
        write_nifti(Volume(image, affine, case_id), root / "imagesTr" / f"{case_id}_0000.nii.gz")
        write_nifti(
            Volume(mask.astype(np.float32), affine, case_id), root / "labelsTr" / f"{case_id}.nii.gz", dtype=np.uint8
        )
        entries.append({"image": f"./imagesTr/{case_id}.nii.gz", "label": f"./labelsTr/{case_id}.nii.gz"})
        rows.append(f"{case_id},{mask.sum() * voxel_ml * rng.uniform(0.9, 1.1):.4f}")
    description = {
        "name": "WSSSCam phantoms",
        "description": "Generated brain-like phantoms with soft-boundary lesions (WSSSCamLib.data.synthetic)",
        "modality": {"0": "phantom"},
        "labels": {"0": "background", "1": "lesion"},
        "numTraining": cases,
        "training": entries,
    }
    write_text(root / "measures.csv", "\n".join(rows) + "\n")
    write_text(root / "dataset.json", json.dumps(description, indent=1))
    return root
