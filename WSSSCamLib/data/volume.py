"""A volume with its geometry, as every reader returns it and every writer takes it.

Conventions (the same as 3D Slicer's ``slicer.util.arrayFromVolume``):

* ``array`` is float32 NumPy in **KJI** order (slice, row, column) for one channel, or
  C x K x J x I for several channels (modalities stacked on a leading axis);
* ``ijk_to_ras`` is the 4 x 4 affine mapping voxel indices (i, j, k, 1) to **RAS** millimetres
  (right, anterior, superior), as a NIfTI affine; DICOM/ITK's LPS is converted on reading;
* ``spacing``, ``origin`` and ``direction`` are derived from it, in IJK axis order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Flip of the first two world axes: LPS (DICOM, ITK) <-> RAS (NIfTI, Slicer)."""


@dataclass
class Volume:
    """Voxel array (KJI, float32) plus its voxel-to-RAS affine and the file it came from."""

    array: np.ndarray
    ijk_to_ras: np.ndarray = field(default_factory=lambda: np.eye(4))
    source: str = ""

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=np.float32)
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=np.float64)
        if self.ijk_to_ras.shape != (4, 4):
            raise ValueError(f"{self.source or 'volume'}: ijk_to_ras must be 4 x 4, got {self.ijk_to_ras.shape}")
        if self.array.ndim not in (3, 4):
            raise ValueError(
                f"{self.source or 'volume'}: array must be K x J x I or C x K x J x I, got shape {self.array.shape}"
            )

    @property
    def channels(self) -> int:
        return 1 if self.array.ndim == 3 else self.array.shape[0]

    @property
    def shape_kji(self) -> tuple[int, int, int]:
        return tuple(self.array.shape[-3:])

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along I, J, K."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def origin(self) -> np.ndarray:
        """RAS position (mm) of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def direction(self) -> np.ndarray:
        """3 x 3 matrix whose columns are the unit RAS directions of the I, J, K axes."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    def same_grid(self, other: Volume, tolerance: float = 1e-4) -> bool:
        """True when both volumes have the same KJI shape and (to ``tolerance`` mm) the same affine."""
        return self.shape_kji == other.shape_kji and bool(
            np.allclose(self.ijk_to_ras, other.ijk_to_ras, atol=tolerance)
        )

    def check_finite(self) -> None:
        """Raise ``ValueError`` naming the file when the array holds NaN or infinite voxels."""
        bad = ~np.isfinite(self.array)
        if bad.any():
            raise ValueError(f"{self.source or 'volume'}: {int(bad.sum())} voxels are NaN or infinite")

    def check_affine(self) -> None:
        """Raise ``ValueError`` naming the file when the voxel-to-RAS affine is not finite, not affine (last row
        other than 0 0 0 1) or singular (a zero or degenerate voxel axis: no geometry to keep)."""
        name = self.source or "volume"
        affine = self.ijk_to_ras
        if not np.isfinite(affine).all():
            raise ValueError(f"{name}: the voxel-to-world affine holds NaN or infinite values: {affine.tolist()}")
        if not np.allclose(affine[3], [0, 0, 0, 1]):
            raise ValueError(f"{name}: the voxel-to-world affine's last row is {affine[3].tolist()}, not [0, 0, 0, 1]")
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        if spacing.min() <= 1e-8 or abs(np.linalg.det(affine[:3, :3])) <= 1e-12 * float(np.prod(spacing)):
            raise ValueError(
                f"{name}: the voxel-to-world affine is singular (voxel axes {spacing.round(6).tolist()} mm, "
                "all-zero or parallel): the file has no usable geometry"
            )


def affine_from_geometry(spacing, origin, direction) -> np.ndarray:
    """4 x 4 IJK-to-RAS affine from spacing (I, J, K mm), RAS origin and unit direction columns."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
    affine[:3, 3] = origin
    return affine
