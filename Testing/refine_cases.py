"""Hand cases for the refinement tests (Testing/WSSSCamLib/refine): small 2D and 3D arrays whose right
answer is known by construction.

- ``box``: a bright square (2D) or cube (3D) on a dark background, the "lesion" the CAM should find;
- ``shifted_case``: the CAM mask is that box shifted along the first axis (it spills over one edge and
  misses the opposite one); a pooling or CRF step that follows the image should snap back to the box;
- ``ring_case``: a CAM that is 1 in a core well inside the box, 0.5 in a band that straddles the box's
  edge and 0 outside: confident foreground and background seeds on both sides of a sharp edge, the
  edge itself undecided by the CAM; a step that follows the image should return the box.
"""

from __future__ import annotations

import torch


def box(shape: tuple[int, ...], low: int, high: int) -> torch.Tensor:
    """bool tensor of ``shape``, True in [low, high) along every axis."""
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[tuple(slice(low, high) for _ in shape)] = True
    return mask


def image_of(truth: torch.Tensor, noise: float = 0.0, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """1 x C x *spatial float image: the truth box at 1 over 0 plus Gaussian noise (all channels alike)."""
    generator = torch.Generator().manual_seed(seed)
    image = truth.float()[None].repeat(channels, *([1] * truth.ndim))
    return (image + noise * torch.randn(image.shape, generator=generator))[None]


def shifted_case(dims: int, shift: int = 3, noise: float = 0.0, channels: int = 1):
    """(truth 1 x *spatial, mask 1 x *spatial, image 1 x C x *spatial): 2D 48 x 48 with a 20 x 20 square,
    3D 24^3 with a 10^3 cube; the mask is the truth shifted by ``shift`` along the first spatial axis."""
    n, low, high = (48, 14, 34) if dims == 2 else (24, 7, 17)
    truth = box((n,) * dims, low, high)
    mask = torch.roll(truth, shifts=shift, dims=0)
    return truth[None], mask[None], image_of(truth, noise, channels)


def ring_case(dims: int, noise: float = 0.0, channels: int = 1):
    """(truth, maps, image): maps 1 in the core (4 px inside the square in 2D, 2 voxels inside the cube in
    3D), 0.5 in a band reaching 6 px (2D) / 3 voxels (3D) beyond the edge, 0 elsewhere."""
    n, low, high, inset, band = (48, 14, 34, 4, 6) if dims == 2 else (24, 7, 17, 2, 3)
    shape = (n,) * dims
    truth = box(shape, low, high)
    maps = torch.where(box(shape, low - band, high + band), 0.5, 0.0)
    maps = torch.where(box(shape, low + inset, high - inset), 1.0, maps)
    return truth[None], maps[None].float(), image_of(truth, noise, channels)


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))
