"""A segmentation network's own segmentation of a whole volume, on the volume's own voxel grid.

The volume is normalised and cut into slices by the recipe its model card records (the path the
classifiers' CAMs take: :func:`~WSSSCamLib.inference.volume_cams.card_slices`), the slices go through
the network in batches on the run's device, and each slice's softmax probabilities (N x C x h x w at
the network's input size) are resized bilinearly (half-pixel centres, ``align_corners=False``) to
the slice's own size. Bilinear weights sum to one, so the resized values are still probabilities.

A 3D network (card ``spatial_dims`` 3 with a slice recipe, e.g. the study's 3D pseudo-label U-Nets) sees the
same slices stacked in slice order (:func:`stack_segmentation`): in the windows of ``depth`` consecutive slices it
was trained on (:func:`~WSSSCamLib.data.stacks.window_starts`; a stack shorter than a window padded at
its end with zero images), the softmax of overlapping windows averaged per slice; without a depth the whole stack
in one pass, padded to a multiple of :data:`STACK_MULTIPLE` slices (the padding's output dropped). Its per-slice
probabilities are then resized like a 2D network's.

Conventions: class 0 is the background (the ``[background, abnormal]`` cards of the pseudo-label
U-Nets, MONAI's and nnU-Net's convention). The segment is every voxel whose argmax over the resized
probabilities is not the background (for two classes: p(abnormal) > 0.5, a tie stays background);
the probability volume is 1 - p(background) (for two classes: p(abnormal)).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.stacks import window_starts
from ..data.volume import Volume
from ..devices import resolve_device
from ..models.card import ModelCard
from .volume_cams import card_slices

BACKGROUND_CLASS = 0
"""Index of the background class of a segmentation network's output."""
STACK_MULTIPLE = 8
"""A 3D U-Net's stack of slices is padded to a multiple of this (the zoo's ``monai-unet`` halves it three times)."""


@dataclass
class VolumeSegmentation:
    """``probability``: K x J x I float32 in [0, 1], 1 - p(background) on the input volume's voxel grid;
    ``mask``: K x J x I bool, argmax over the classes is not the background; both on the CPU.
    ``axis``: the recipe's slicing axis ('K', 'J' or 'I')."""

    probability: torch.Tensor
    mask: torch.Tensor
    axis: str


def check_segmentation_card(card: ModelCard, where: str) -> None:
    """``ValueError`` naming ``where`` when the card cannot describe a segmentation network whose own
    segment predict writes: fewer than two output classes (no softmax over background and abnormal),
    or a 3D network trained on a volume recipe (predict runs 2D networks slice by slice and 3D networks over
    the stack of a slice recipe's slices)."""
    if card.num_classes < 2:
        raise ValueError(
            f"{where}: a segmentation network needs at least two output classes (background first, then "
            f"abnormal), the card says num_classes {card.num_classes}"
        )
    if not (card.spatial_dims == 2 or card.is_stack_segmentation):
        raise ValueError(
            f"{where}: a {card.spatial_dims}D segmentation network on a "
            f"{(card.recipe or {}).get('kind', 'slice') if card.recipe else 'missing'} recipe; predict runs 2D "
            "networks slice by slice and 3D networks over the stack of a recorded slice recipe's slices"
        )


def slice_segmentation(
    model: nn.Module, images: torch.Tensor, size: Sequence[int], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(foreground probability N x H x W, mask N x H x W bool) at ``size`` (H, W) of one batch of network
    input ``images`` (N x C x h x w), on the images' device (see the module docstring)."""
    with torch.inference_mode():
        logits = model(images)
    if logits.ndim != 4 or logits.shape[:2] != (images.shape[0], num_classes):
        raise ValueError(
            f"the segmentation network gave output of shape {tuple(logits.shape)}; expected N x {num_classes} x H x W"
        )
    return _probabilities(torch.softmax(logits.float(), dim=1), size)


def _stack_softmax(model: nn.Module, stack: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Softmax (num_classes x D x h x w) of one C x D x h x w stack, D a multiple of 8."""
    with torch.inference_mode():
        logits = model(stack[None])
    if logits.ndim != 5 or logits.shape[:3] != (1, num_classes, stack.shape[1]):
        raise ValueError(
            f"the 3D segmentation network gave output of shape {tuple(logits.shape)}; expected 1 x {num_classes} x "
            f"{stack.shape[1]} x H x W"
        )
    return torch.softmax(logits[0].float(), dim=0)


def stack_segmentation(
    model: nn.Module, images: torch.Tensor, size: Sequence[int], num_classes: int, depth: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3D network's (foreground probability N x H x W, mask N x H x W bool) at ``size`` (H, W) of one stack of
    ``images`` (N x C x h x w, slices in order): in windows of ``depth`` slices, or (None) in one pass (see the
    module docstring); on the images' device."""
    n = images.shape[0]
    stack = images.movedim(0, 1)  # C x N x h x w
    if depth is None or n < depth:
        length = max(n, depth or 0)
        length += -length % STACK_MULTIPLE
        padded = torch.cat([stack, stack.new_zeros((stack.shape[0], length - n, *stack.shape[2:]))], dim=1)
        probabilities = _stack_softmax(model, padded, num_classes)[:, :n]
    else:
        total = stack.new_zeros((num_classes, n, *stack.shape[2:]), dtype=torch.float32)
        covered = stack.new_zeros((n,), dtype=torch.float32)
        for start in window_starts(n, depth):
            total[:, start : start + depth] += _stack_softmax(model, stack[:, start : start + depth], num_classes)
            covered[start : start + depth] += 1
        probabilities = total / covered.view(1, -1, 1, 1)
    return _probabilities(probabilities.movedim(1, 0), size)


def _probabilities(probabilities: torch.Tensor, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """N x K x h x w class probabilities resized bilinearly to ``size``: (1 - p(background), argmax mask)."""
    if tuple(probabilities.shape[-2:]) != tuple(size):
        probabilities = F.interpolate(probabilities, size=tuple(size), mode="bilinear", align_corners=False)
    mask = probabilities.argmax(dim=1) != BACKGROUND_CLASS
    return (1.0 - probabilities[:, BACKGROUND_CLASS]).clamp_(0.0, 1.0), mask


def segment_slices(
    model: nn.Module,
    images: torch.Tensor,
    size: Sequence[int],
    num_classes: int,
    batch_size: int,
    depth: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probability, mask), N x H x W on the CPU, of slices ``images`` (N x C x h x w) by a 2D network (batches of
    ``batch_size`` slices) or, with a window ``depth``, a 3D one (one case's slices, in order: its stack), on the
    model's device."""
    device = next(model.parameters()).device
    if depth is not None:
        probability, mask = stack_segmentation(model, images.to(device), size, num_classes, depth)
        return probability.cpu(), mask.cpu()
    parts = [
        slice_segmentation(model, images[start : start + batch_size].to(device), size, num_classes)
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat([p.cpu() for p, _ in parts]), torch.cat([m.cpu() for _, m in parts])


def iter_volume_segmentation(
    volume: Volume, model: nn.Module, card: ModelCard, batch_size: int = 32, device: str | torch.device = "auto"
) -> Iterator[tuple[int, int, VolumeSegmentation | None]]:
    """The network's segmentation of every slice of ``volume`` (C x K x J x I or K x J x I, the card's
    channels in order); yields ``(done, total, None)`` after each batch and finally
    ``(total, total, VolumeSegmentation)``."""
    check_segmentation_card(card, volume.source or "volume")
    cut = card_slices(volume, card)
    device = resolve_device(device)
    model = model.to(device).eval()
    total = len(cut.slices)
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    if card.spatial_dims == 3:  # the whole stack, in the card's windows
        parts.append(
            stack_segmentation(model, cut.slices.images.to(device), cut.native, card.num_classes, card.stack_depth)
        )
        yield total, total, None
    else:
        for start in range(0, total, batch_size):
            batch = cut.slices.images[start : start + batch_size].to(device)
            parts.append(slice_segmentation(model, batch, cut.native, card.num_classes))
            yield min(start + batch_size, total), total, None
    probabilities, masks = torch.cat([p.cpu() for p, _ in parts]), torch.cat([m.cpu() for _, m in parts])
    yield (
        total,
        total,
        VolumeSegmentation(
            torch.movedim(probabilities, 0, cut.axis).contiguous(),
            torch.movedim(masks, 0, cut.axis).contiguous(),
            cut.recipe.axis,
        ),
    )


def volume_segmentation(
    volume: Volume, model: nn.Module, card: ModelCard, batch_size: int = 32, device: str | torch.device = "auto"
) -> VolumeSegmentation:
    """:func:`iter_volume_segmentation` run to the end."""
    *_, (_, _, result) = iter_volume_segmentation(volume, model, card, batch_size, device)
    return result
