"""Training a 2D or 3D segmentation network (the zoo's ``monai-unet``) on per-pixel labels with ignored pixels.

Labels are N x H x W (2D) or N x D x H x W (3D: stacks of slices) ``uint8`` on the network's input grid:
0 background, 1 abnormal, :data:`IGNORE` (255) ignored (no loss). The loss is cross-entropy over the non-ignored pixels (``ignore_index=255``) plus a soft
Dice loss (mean over the two classes of 1 - (2 sum p y + 1) / (sum p + sum y + 1), sums over the batch's
non-ignored pixels, p the softmax). Adam, seeded (initial weights, batch order and flips all follow
``seed``), optional random left-right and up-down flips of image and labels together (in 3D of the whole
window; never along the stack, whose 2.5D context channels - previous and next slice - would then point the wrong
way), the last epoch's weights kept (no validation, no early stopping). The network's spatial dimensions follow
the images (N x C x H x W: 2D, N x C x D x H x W: 3D).

The network: ``monai.networks.nets.UNet`` as the model zoo builds it (``channels=(16, 32, 64, 128)``,
``strides=(2, 2, 2)``, one residual unit per level; about 0.2 M parameters for 5 input channels), so the
checkpoint loads through :func:`~WSSSCamLib.training.checkpoint.load_checkpoint` and ``wssscam predict``'s
segmentation path (:mod:`WSSSCamLib.inference.segmentation`). CPU budget: one epoch over about 900 slices of
128 x 128 pixels, batch 16, takes about 15 s on one thread (``Testing/benchmarks/bench_segment.py``).

The model card (:func:`segmentation_card`): architecture ``monai-unet``, classes ``[background, abnormal]``
(class 0 the background), the slice recipe it was trained on (the study's, with the U-Net's own ``size``),
so ``wssscam predict`` reads, normalises and slices a volume for it exactly as in training.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.stacks import window_starts
from ..devices import resolve_device
from ..errors import InvalidInputError
from ..models.card import ModelCard
from ..models.zoo import build_model
from .trainer import write_epoch_log

IGNORE = 255
"""The label of pixels that no loss term sees."""
ARCHITECTURE = "monai-unet"
"""The zoo architecture of every segmentation network trained here."""
CLASS_NAMES = ["background", "abnormal"]
"""Output classes, class 0 the background (the predict engine's convention)."""
SEGMENTATION_LOG_COLUMNS = ("epoch", "loss", "cross_entropy", "dice_loss", "seconds")


@dataclass
class SegmentationTrainConfig:
    """How to train: ``epochs``, ``batch_size``, Adam ``learning_rate``, ``seed``, ``augment`` (random flips),
    ``device`` (``auto | cpu | cuda[:N]``)."""

    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    augment: bool = True
    device: str = "auto"


@dataclass
class SegmentationEpoch:
    """One epoch: mean loss over the epoch's pixels-weighted batches, its two terms, wall seconds."""

    epoch: int
    loss: float
    cross_entropy: float
    dice_loss: float
    seconds: float


@dataclass
class SegmentationTrainResult:
    """The per-epoch history, the training set's size and its share of ignored pixels."""

    history: list[SegmentationEpoch] = field(default_factory=list)
    slices: int = 0
    ignored_fraction: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, cross-entropy, soft Dice loss) of ``logits`` N x K x *spatial against ``labels`` N x *spatial (int,
    :data:`IGNORE` ignored; see the module docstring). A batch whose pixels are all ignored gives zeros
    (with a gradient path; zero gradients, although Adam's momentum still moves the weights in that step)."""
    labels = labels.long()
    valid = labels != IGNORE
    if not bool(valid.any()):
        zero = logits.sum() * 0.0
        return zero, zero, zero
    cross_entropy = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE)
    probabilities = torch.softmax(logits.float(), dim=1)
    target = F.one_hot(torch.where(valid, labels, 0), logits.shape[1]).movedim(-1, 1).float()
    weight = valid[:, None].float()
    dims = (0, *range(2, logits.ndim))
    intersection = (probabilities * target * weight).sum(dim=dims)
    sizes = (probabilities * weight).sum(dim=dims) + (target * weight).sum(dim=dims)
    dice_loss = (1.0 - (2.0 * intersection + 1.0) / (sizes + 1.0)).mean()
    return cross_entropy + dice_loss, cross_entropy, dice_loss


def _flip(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample flipped left-right and/or up-down with probability 1/2 each (images and labels alike; a 3D
    window in-plane only, see the module docstring)."""
    n = images.shape[0]
    for dim in (-1, -2):
        flip = torch.rand(n, generator=generator) < 0.5
        if bool(flip.any()):
            images = torch.where(flip.view(-1, *[1] * (images.ndim - 1)).to(images.device), images.flip(dim), images)
            labels = torch.where(flip.view(-1, *[1] * (labels.ndim - 1)).to(labels.device), labels.flip(dim), labels)
    return images, labels


def depth_windows(images: torch.Tensor, labels: torch.Tensor, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3D U-Net's training samples from one case's stack of slices (``images`` N x C x H x W in slice order,
    ``labels`` N x H x W): windows of ``depth`` consecutive slices at :func:`window_starts`, W x C x depth x H x W
    and W x depth x H x W; a stack shorter than ``depth`` gives one window padded at its end with zero images and
    :data:`IGNORE` labels (no loss)."""
    n = images.shape[0]
    if n < depth:
        pad = depth - n
        images = torch.cat([images, images.new_zeros((pad, *images.shape[1:]))])
        labels = torch.cat([labels, labels.new_full((pad, *labels.shape[1:]), IGNORE)])
    starts = window_starts(max(n, depth), depth)
    windows = [(images[s : s + depth].movedim(0, 1), labels[s : s + depth]) for s in starts]
    return torch.stack([w[0] for w in windows]), torch.stack([w[1] for w in windows])


def check_labels(images: torch.Tensor, labels: torch.Tensor, where: str) -> None:
    """Refuse training data that cannot train: shapes that differ, no slices, values other than 0, 1, 255."""
    if images.ndim not in (4, 5) or labels.shape != (images.shape[0], *images.shape[2:]):
        raise InvalidInputError(
            f"{where}: images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match (N x C x *spatial, "
            "N x *spatial; 2D or 3D)"
        )
    if images.shape[0] == 0:
        raise InvalidInputError(f"{where}: no training slices")
    unknown = set(torch.unique(labels).tolist()) - {0, 1, IGNORE}
    if unknown:
        raise InvalidInputError(f"{where}: labels hold values {sorted(unknown)}; expected 0, 1 or {IGNORE}")


def train_segmentation(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: SegmentationTrainConfig | None = None,
    log_path: str | Path | None = None,
    on_epoch: object = None,
) -> tuple[nn.Module, SegmentationTrainResult]:
    """A fresh ``monai-unet`` (seeded with ``config.seed``; 2D or 3D as the images) trained on ``images``
    (N x C x H x W, or N x C x D x H x W, float32) and ``labels`` (N x spatial uint8: 0, 1, :data:`IGNORE`); returns (network in eval mode, history). ``log_path``:
    the per-epoch CSV; ``on_epoch``: called with each :class:`SegmentationEpoch` (progress, tests)."""
    config = config or SegmentationTrainConfig()
    check_labels(images, labels, "segmentation training set")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(ARCHITECTURE, images.shape[1], len(CLASS_NAMES), images.ndim - 2).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    result = SegmentationTrainResult(
        slices=int(images.shape[0]), ignored_fraction=float((labels == IGNORE).float().mean())
    )
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            batch, target = images[index], labels[index]
            if config.augment:
                batch, target = _flip(batch, target, generator)
            loss, cross_entropy, dice_loss = segmentation_loss(model(batch.to(device)), target.to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            totals += torch.tensor([loss.item(), cross_entropy.item(), dice_loss.item()], dtype=torch.float64) * len(
                index
            )
        means = (totals / len(images)).tolist()
        record = SegmentationEpoch(epoch, *means, seconds=time.perf_counter() - started)
        result.history.append(record)
        if log_path is not None:
            write_epoch_log(result.history, Path(log_path), SEGMENTATION_LOG_COLUMNS)
        if callable(on_epoch):
            on_epoch(record)
    return model.eval(), result


def segmentation_card(
    in_channels: int,
    channel_names: list[str],
    recipe: dict,
    split: dict,
    training: dict,
    normalisation: str = "",
    data_fingerprint: str = "",
    depth: int | None = None,
) -> ModelCard:
    """The model card of a U-Net trained here: ``recipe`` the slice recipe's fields (its ``size`` the U-Net's
    input side), ``split`` the cases it trained on / held out, ``training`` settings and history;
    with a window ``depth``: a 3D U-Net over the stack of the recipe's slices, ``input_size`` [depth, size, size]
    (:func:`~WSSSCamLib.inference.segmentation.stack_segmentation`)."""
    size = int(recipe["size"])
    return ModelCard(
        architecture=ARCHITECTURE,
        in_channels=in_channels,
        num_classes=len(CLASS_NAMES),
        class_names=list(CLASS_NAMES),
        channel_names=list(channel_names),
        spatial_dims=2 if depth is None else 3,
        input_size=[size, size] if depth is None else [int(depth), size, size],
        slice_axis=str(recipe.get("axis", "K")),
        normalisation=normalisation,
        recipe=dict(recipe),
        split=split,
        data_fingerprint=data_fingerprint,
        training=training,
    )


__all__ = [
    "ARCHITECTURE",
    "CLASS_NAMES",
    "IGNORE",
    "SegmentationEpoch",
    "SegmentationTrainConfig",
    "SegmentationTrainResult",
    "segmentation_card",
    "segmentation_loss",
    "train_segmentation",
]
