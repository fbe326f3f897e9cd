"""Test-time augmentation of CAMs: the maps of rescaled and mirrored copies of each slice, brought back
to the slice's grid and averaged (multi-scale and flip fusion, as in the CAM refinement literature,
e.g. Ahn and Kwak 2018; the trainer's flip-averaged evaluation does the same for probabilities).

Each copy's maps are min-max normalised per sample by the engine; their mean is normalised again, so
the fused map follows the engine's convention ([0, 1], a constant map gives zeros). Probabilities
are the mean target-class probability over the copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..cams import CamEngine
from ..cams.postprocess import min_max_normalize


@dataclass(frozen=True)
class TestTimeAugmentation:
    """``scales``: input size factors (1.0 = the network's input size); ``flip``: also the mirror image
    (along the slice's last axis, I for axial slices). The default is no augmentation."""

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    __test__ = False  # not a pytest test class despite its name

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(not 0.25 <= s <= 4.0 for s in scales):
            raise ValueError(f"test-time augmentation: scales must be between 0.25 and 4, got {list(self.scales)}")
        object.__setattr__(self, "scales", scales)

    @property
    def is_identity(self) -> bool:
        return self.scales == (1.0,) and not self.flip

    def variants(self) -> list[tuple[float, bool]]:
        """(scale, mirrored) of every copy."""
        return [(scale, mirrored) for scale in self.scales for mirrored in ((False, True) if self.flip else (False,))]

    def describe(self) -> dict:
        return {"scales": list(self.scales), "flip": self.flip}


def _resized(images: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return images
    size = [max(8, round(n * scale)) for n in images.shape[2:]]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def augmented_cams(
    engine: CamEngine,
    images: torch.Tensor,
    methods: Sequence[str],
    target_class: int,
    size: Sequence[int],
    augmentation: TestTimeAugmentation,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Fused maps (method -> N x H x W at ``size``, in [0, 1]) and mean target-class probabilities (N)
    of a batch of 2D classifier input ``images`` (N x C x h x w) over the copies of ``augmentation``."""
    if images.ndim != 4:
        raise ValueError(f"test-time augmentation works on 2D slices N x C x H x W, got shape {tuple(images.shape)}")
    sums: dict[str, torch.Tensor] = {}
    probabilities = torch.zeros(images.shape[0], device=images.device)
    variants = augmentation.variants()
    for scale, mirrored in variants:
        copy = _resized(images, scale)
        copy = copy.flip(-1) if mirrored else copy
        result = engine(copy, target_class, methods)
        probabilities += torch.softmax(result.logits.float(), dim=1)[:, target_class]
        for name, maps in result.maps.items():
            maps = maps.flip(-1) if mirrored else maps
            maps = F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
            sums[name] = sums[name] + maps if name in sums else maps
    return {name: min_max_normalize(total / len(variants)) for name, total in sums.items()}, probabilities / len(
        variants
    )
