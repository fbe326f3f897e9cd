"""CAMs of a trained slice classifier over whole volumes, returned on the volume's own voxel grid.

The stage between "volume" and "maps" of the data flow: a volume (C x K x J x I, RAS geometry)
is normalised and cut into slices by the recipe its model card records, the slices go through
the :class:`~WSSSCamLib.cams.CamEngine` in batches, and each slice's maps are resized back from
the network's input size to the slice's own size, so the result lines up voxel for voxel with the
input volume (same K x J x I array order, same ``ijk_to_ras``).

:func:`iter_volume_cams` yields after every batch so that a GUI (the Slicer module) can show
progress, stay responsive and cancel between batches; :func:`volume_cams` runs it to the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cams import CamEngine, Region, resolve_methods
from ..data.recipe import SliceRecipe, recipe_from_card
from ..data.slices import SLICE_AXES, SliceSet, extract_slices
from ..data.volume import Volume
from ..data.volume_recipe import VolumeRecipe
from ..devices import resolve_device
from ..models.card import ModelCard
from .augmentation import TestTimeAugmentation, augmented_cams


@dataclass
class VolumeCams:
    """``maps``: method -> K x J x I float32 in [0, 1] on the CPU, on the input volume's voxel grid.
    ``probabilities``: the target class's softmax probability per slice (along the recipe's axis)."""

    maps: dict[str, torch.Tensor]
    probabilities: torch.Tensor
    target_class: int
    axis: str


def resize_maps(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize of N x h x w maps to N x ``size`` (H, W), bilinear, or of N x d x h x w maps to N x ``size``
    (D, H, W), trilinear (half-pixel centres), clamped back into [0, 1]."""
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    mode = "trilinear" if len(size) == 3 else "bilinear"
    return F.interpolate(maps[:, None].float(), size=tuple(size), mode=mode, align_corners=False)[:, 0].clamp_(0.0, 1.0)


def cam_engine_for(model: nn.Module, card: ModelCard, layers: Sequence[str] | None = None) -> CamEngine:
    """A CAM engine at ``layers[0]`` (default: the card's target layer), fusing ``layers`` (default: the card's)."""
    target = layers[0] if layers else (card.target_layer or None)
    fusion = list(layers) if layers and len(layers) > 1 else (card.fusion_layers or None)
    return CamEngine(model, target_layer=target, fusion_layers=fusion)


def slice_cams(
    engine: CamEngine,
    images: torch.Tensor,
    methods: Sequence[str],
    target_class: int,
    size: Sequence[int],
    region: torch.Tensor | None = None,
    augmentation: TestTimeAugmentation | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Maps (method -> N x H x W at ``size``, on the images' device) and target-class probabilities (N;
    for a segmentation network the highest over the slice's pixels) of one batch of network input
    ``images`` (N x C x h x w; 3D: N x C x d x h x w, maps N x D x H x W). ``region``: N x h x w pixel set M
    for the Seg- methods. ``augmentation``: multi-scale / flip fusion (:mod:`.augmentation`)."""
    if augmentation is not None and not augmentation.is_identity:
        if region is not None:
            raise ValueError("test-time augmentation is not available for the Seg- methods (their region would move)")
        return augmented_cams(engine, images, methods, target_class, size, augmentation)
    result = engine(images, target_class, methods, Region.from_mask(region) if region is not None else None)
    probabilities = torch.softmax(result.logits.float(), dim=1)[:, target_class]
    if probabilities.ndim > 1:  # a segmentation network: the slice's highest pixel probability
        probabilities = probabilities.flatten(1).amax(dim=1)
    return {name: resize_maps(m, size) for name, m in result.maps.items()}, probabilities


@dataclass
class CardSlices:
    """A volume cut the way a model card's recipe cuts it: ``slices`` (N x C x size x size network input,
    on the CPU), the ``recipe``, the slicing ``axis`` as an index into K x J x I, and ``native`` (H, W),
    each slice's own size on the volume's grid."""

    slices: SliceSet
    recipe: SliceRecipe
    axis: int
    native: list[int]


def card_slices(volume: Volume, card: ModelCard) -> CardSlices:
    """Normalise and slice ``volume`` (C x K x J x I, the card's channels in order) by the card's recipe;
    ``ValueError`` naming the volume when its channel count does not fit the network."""
    recipe = SliceRecipe.from_card(card)
    if volume.channels + (2 if recipe.context_channel is not None else 0) != card.in_channels:
        raise ValueError(
            f"{volume.source or 'volume'}: {volume.channels} channel(s), but the model "
            f"{card.architecture} was trained on {card.channel_names}"
        )
    image, _ = recipe.preprocess()(volume, None)
    slices = extract_slices(
        volume.source or "volume", image, None, recipe.axis, 0, (recipe.size, recipe.size), recipe.context_channel
    )
    axis = SLICE_AXES[recipe.axis]
    return CardSlices(slices, recipe, axis, [n for i, n in enumerate(volume.shape_kji) if i != axis])


def iter_volume_cams(
    volume: Volume,
    model: nn.Module,
    card: ModelCard,
    methods: Sequence[str],
    target_class: int | None = None,
    layers: Sequence[str] | None = None,
    region: np.ndarray | None = None,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    augmentation: TestTimeAugmentation | None = None,
) -> Iterator[tuple[int, int, VolumeCams | None]]:
    """CAMs of every slice of ``volume``; yields ``(done, total, None)`` after each batch and finally
    ``(total, total, VolumeCams)``.

    ``volume``: C x K x J x I (or K x J x I) with the card's channels in order. ``target_class``:
    default the card's last class (the "abnormal" class of a binary classifier). ``region``: a
    K x J x I boolean pixel set M (Seg- methods), resized per slice like the images.
    ``augmentation``: multi-scale / flip fusion of each slice's maps (:mod:`.augmentation`).
    A model trained on 3D slabs or volumes (a volume recipe) is run by :func:`iter_slab_cams`.
    """
    if isinstance(recipe_from_card(card), VolumeRecipe):
        if region is not None or (augmentation is not None and not augmentation.is_identity):
            raise ValueError("a volume (3D slab) model takes neither a Seg- region nor test-time augmentation")
        yield from iter_slab_cams(volume, model, card, methods, target_class, layers, batch_size, device)
        return
    cut = card_slices(volume, card)
    recipe, slices, axis, native = cut.recipe, cut.slices, cut.axis, cut.native
    target_class = card.num_classes - 1 if target_class is None else int(target_class)
    if not 0 <= target_class < card.num_classes:
        raise ValueError(f"target class {target_class} is outside the model's classes {card.class_names}")
    methods = [m.name for m in resolve_methods(methods)]
    device = resolve_device(device)
    model = model.to(device).eval()
    regions = None
    if region is not None:
        regions = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(region, dtype=bool), axis, 0)))
        regions = F.interpolate(regions[:, None].float(), size=(recipe.size, recipe.size), mode="nearest")[:, 0] > 0
    engine = cam_engine_for(model, card, layers)
    total = len(slices)
    parts: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    probabilities = []
    for start in range(0, total, batch_size):
        batch = slices.images[start : start + batch_size].to(device)
        batch_region = regions[start : start + batch_size].to(device) if regions is not None else None
        maps, p = slice_cams(engine, batch, methods, target_class, native, batch_region, augmentation)
        for name in methods:
            parts[name].append(maps[name].float().cpu())
        probabilities.append(p.cpu())
        yield min(start + batch_size, total), total, None
    stacked = {name: torch.movedim(torch.cat(parts[name]), 0, axis).contiguous() for name in methods}
    yield total, total, VolumeCams(stacked, torch.cat(probabilities), target_class, recipe.axis)


def iter_slab_cams(
    volume: Volume,
    model: nn.Module,
    card: ModelCard,
    methods: Sequence[str],
    target_class: int | None = None,
    layers: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
) -> Iterator[tuple[int, int, VolumeCams | None]]:
    """:func:`iter_volume_cams` for a model card with a volume recipe: the volume is cut into the recipe's
    slabs (or kept whole), each slab's 3D maps are resized trilinearly back to the slab's native voxels and
    laid into the volume; where slabs overlap a voxel gets the mean of their maps, and each slice the mean
    target-class probability of the slabs holding it (slices no slab holds, with a stride above the slab:
    map 0, probability 0)."""
    recipe = recipe_from_card(card)
    if volume.channels != card.in_channels:
        raise ValueError(
            f"{volume.source or 'volume'}: {volume.channels} channel(s), but the model "
            f"{card.architecture} was trained on {card.channel_names}"
        )
    target_class = card.num_classes - 1 if target_class is None else int(target_class)
    if not 0 <= target_class < card.num_classes:
        raise ValueError(f"target class {target_class} is outside the model's classes {card.class_names}")
    methods = [m.name for m in resolve_methods(methods)]
    device = resolve_device(device)
    model = model.to(device).eval()
    image, _ = recipe.preprocess()(volume, None)
    items = recipe.items(volume.source or "volume", image, None, 0)
    axis = SLICE_AXES[recipe.axis]
    native = [volume.shape_kji[axis]] + [n for i, n in enumerate(volume.shape_kji) if i != axis]
    starts, length = recipe.starts(native[0]), recipe.length(native[0])
    sums = {m: torch.zeros(native) for m in methods}
    probability_sum, covered = torch.zeros(native[0]), torch.zeros(native[0])
    engine = cam_engine_for(model, card, layers)
    total = len(items)
    for begin in range(0, total, batch_size):
        batch = items.images[begin : begin + batch_size].to(device)
        maps, p = slice_cams(engine, batch, methods, target_class, [length, *native[1:]])
        for offset, start in enumerate(starts[begin : begin + batch_size]):
            window = slice(start, start + length)
            for name in methods:
                sums[name][window] += maps[name][offset].float().cpu()
            probability_sum[window] += float(p[offset])
            covered[window] += 1
        yield min(begin + batch_size, total), total, None
    count = covered.clamp(min=1)
    stacked = {name: torch.movedim(sums[name] / count[:, None, None], 0, axis).contiguous() for name in methods}
    yield total, total, VolumeCams(stacked, probability_sum / count, target_class, recipe.axis)


def volume_cams(
    volume: Volume,
    model: nn.Module,
    card: ModelCard,
    methods: Sequence[str],
    target_class: int | None = None,
    layers: Sequence[str] | None = None,
    region: np.ndarray | None = None,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    augmentation: TestTimeAugmentation | None = None,
) -> VolumeCams:
    """:func:`iter_volume_cams` run to the end."""
    *_, (_, _, result) = iter_volume_cams(
        volume, model, card, methods, target_class, layers, region, batch_size, device, augmentation
    )
    return result
