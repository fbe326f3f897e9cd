"""Resampling a KJI array from one voxel grid onto another (NumPy/SciPy only, no MRML).

Both grids are given by their 4 x 4 IJK-to-RAS affines; the target voxel (i, j, k) takes the
source value at the same RAS point, ``ijk_src = inv(A_src) @ A_tgt @ ijk_tgt``. Linear
interpolation (``order=1``) for intensities, nearest neighbour (``order=0``) for masks and labels;
points outside the source get ``fill``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def target_to_source_kji(source_ijk_to_ras: np.ndarray, target_ijk_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matrix (3 x 3) and offset (3) mapping target KJI indices to source KJI indices.

    ``inv(A_src) @ A_tgt`` maps IJK to IJK; reversing both index orders turns it into KJI -> KJI.
    """
    ijk = np.linalg.inv(np.asarray(source_ijk_to_ras, dtype=np.float64)) @ np.asarray(
        target_ijk_to_ras, dtype=np.float64
    )
    flip = np.eye(3)[::-1]
    return flip @ ijk[:3, :3] @ flip, flip @ ijk[:3, 3]


def resample_to_grid(
    array: np.ndarray,
    source_ijk_to_ras: np.ndarray,
    target_ijk_to_ras: np.ndarray,
    target_shape_kji: tuple[int, int, int],
    order: int = 1,
    fill: float = 0.0,
) -> np.ndarray:
    """``array`` (K x J x I on the source grid) resampled onto the target grid (``target_shape_kji``).

    ``order``: 1 = trilinear (intensities), 0 = nearest neighbour (masks; the result keeps the
    input's dtype). Values outside the source volume become ``fill``.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"resample_to_grid: array must be K x J x I, got shape {array.shape}")
    matrix, offset = target_to_source_kji(source_ijk_to_ras, target_ijk_to_ras)
    if order == 0:
        # Nearest neighbour by rounding the source index (ties upward), exact for masks and labels.
        grid = np.indices(tuple(target_shape_kji), dtype=np.float64).reshape(3, -1)
        source = np.floor(matrix @ grid + offset[:, None] + 0.5).astype(np.int64)
        inside = np.all((source >= 0) & (source < np.array(array.shape)[:, None]), axis=0)
        out = np.full(grid.shape[1], fill, dtype=array.dtype)
        out[inside] = array[source[0, inside], source[1, inside], source[2, inside]]
        return out.reshape(tuple(target_shape_kji))
    values = array.astype(np.float32 if array.dtype != np.float64 else np.float64)
    return ndimage.affine_transform(
        values, matrix, offset, output_shape=tuple(target_shape_kji), order=order, mode="constant", cval=fill
    )
