"""The names of the CAM methods and what each needs from the forward/backward pass.

Names are matched case-insensitively and ignoring '-', '_', ' ' and '.', so ``"GradCAM++"``,
``"grad-cam++"`` and ``"grad_cam_pp"`` are the same method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from . import gradient_maps

Kind = Literal["gradient", "fused-gradient", "classifier", "activation", "score", "smooth"]


@dataclass(frozen=True)
class Method:
    """One CAM method: its canonical name, what it needs, and (for gradient methods) its map function.

    ``kind``: ``gradient`` (A and g at the target layer, from the shared pass), ``fused-gradient``
    (A and g at several layers), ``classifier`` (A and the final linear weights), ``activation``
    (A only), ``score`` (masked-input forward passes), ``smooth`` (gradient passes on noisy copies).
    ``segmentation``: the method is defined only for networks with a spatial output.
    """

    name: str
    kind: Kind
    map_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    segmentation: bool = False
    description: str = ""


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("cam", "classifier", description="CAM (Zhou 2016): final linear weights x activations"),
        Method("grad-cam", "gradient", gradient_maps.grad_cam, description="Grad-CAM: spatially averaged gradients"),
        Method(
            "grad-cam++",
            "gradient",
            gradient_maps.grad_cam_plus_plus,
            description="Grad-CAM++: closed-form higher-order weights",
        ),
        Method(
            "hires-cam", "gradient", gradient_maps.hires_cam, description="HiResCAM: element-wise gradient x activation"
        ),
        Method(
            "xgrad-cam",
            "gradient",
            gradient_maps.xgrad_cam,
            description="XGrad-CAM: activation-normalised gradient weights",
        ),
        Method("layer-cam", "gradient", gradient_maps.layer_cam, description="Layer-CAM at the target layer"),
        Method(
            "layer-cam-fused",
            "fused-gradient",
            gradient_maps.layer_cam,
            description="Layer-CAM fused over several layers (Syed et al. 2023 eq. 13)",
        ),
        Method("score-cam", "score", description="Score-CAM: softmax of masked-input class scores"),
        Method(
            "faster-score-cam", "score", description="Faster Score-CAM: Score-CAM on the k highest-variance channels"
        ),
        Method("eigen-cam", "activation", description="Eigen-CAM: first principal component of the activations"),
        Method(
            "smoothgrad-cam++",
            "smooth",
            gradient_maps.grad_cam_plus_plus,
            description="SmoothGrad-CAM++: Grad-CAM++ averaged over noisy inputs",
        ),
        Method(
            "seg-grad-cam",
            "gradient",
            gradient_maps.grad_cam,
            segmentation=True,
            description="Seg-Grad-CAM: Grad-CAM of logits summed over a region",
        ),
        Method(
            "seg-hires-grad-cam",
            "gradient",
            gradient_maps.hires_cam,
            segmentation=True,
            description="Seg-HiRes-Grad-CAM: HiResCAM of logits summed over a region",
        ),
    )
}

GRADIENT_METHODS = ("grad-cam", "grad-cam++", "hires-cam", "xgrad-cam", "layer-cam")
"""The five gradient methods that one shared forward/backward pass serves (benchmarked together)."""


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_ .")


_ALIASES = {_key(name): name for name in METHODS}
_ALIASES.update(
    {
        "gradcampp": "grad-cam++",
        "gradcamplusplus": "grad-cam++",
        "hiresgradcam": "hires-cam",
        "smoothgradcampp": "smoothgrad-cam++",
        "seghirescam": "seg-hires-grad-cam",
        "layercamfusion": "layer-cam-fused",
        "fasterscorecam": "faster-score-cam",
    }
)


def resolve_methods(names: str | Iterable[str]) -> list[Method]:
    """Canonical :class:`Method` objects for ``names``, in order, without duplicates."""
    if isinstance(names, str):
        names = [names]
    resolved: list[Method] = []
    for name in names:
        canonical = _ALIASES.get(_key(name))
        if canonical is None:
            raise ValueError(f"unknown CAM method '{name}'; known methods: {', '.join(METHODS)}")
        if METHODS[canonical] not in resolved:
            resolved.append(METHODS[canonical])
    if not resolved:
        raise ValueError("no CAM method requested")
    return resolved
