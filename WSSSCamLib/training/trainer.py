"""Training a slice classifier from image-level labels.

Class balance by a weighted loss (or a balanced sampler), AdamW with a one-cycle learning-rate
schedule, augmentation on the batch's device, early stopping on the validation ROC AUC (the best
epoch's weights are restored), automatic mixed precision on CUDA, seeded, with a progress bar.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..atomic import write_text
from ..data.augment import Augment, default_augmentation
from ..data.slices import SliceSet
from ..devices import resolve_device
from ..errors import InvalidInputError
from ..metrics.classification import accuracy, roc_auc


@dataclass
class TrainConfig:
    """How to train. ``balance``: ``loss`` (class-weighted cross-entropy), ``sampler`` (batches drawn
    with equal class probability) or ``none``. ``patience``: epochs without a better validation AUC
    before stopping (0: never stop early). ``device``: ``auto | cpu | cuda | cuda:N``.
    ``flip_averaging``: validation and test probabilities are the mean over the slice and its
    left-right mirror image."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    balance: Literal["loss", "sampler", "none"] = "loss"
    patience: int = 10
    augment: bool = True
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    flip_averaging: bool = True


@dataclass
class EpochRecord:
    """One epoch of training: its number and losses/scores as recorded in the model card's history."""

    epoch: int
    train_loss: float
    val_auc: float | None = None
    val_accuracy: float | None = None
    learning_rate: float = 0.0
    seconds: float = 0.0


@dataclass
class TrainResult:
    """``history`` per epoch; ``best_epoch`` (1-based) whose weights the model now holds; its validation metrics."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    val_auc: float | None = None
    val_accuracy: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    flip_averaging: bool = False,
) -> torch.Tensor:
    """Softmax class probabilities (N x K, on the CPU) of ``images`` (N x C x H x W), in eval mode;
    with ``flip_averaging`` the mean of the image's and its mirror image's (last axis flipped)."""
    device = resolve_device(device)
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        probabilities = torch.softmax(model(batch).float(), dim=1)
        if flip_averaging:
            probabilities = (probabilities + torch.softmax(model(batch.flip(-1)).float(), dim=1)) / 2
        outputs.append(probabilities.cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def evaluate(
    model: nn.Module,
    slices: SliceSet,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    flip_averaging: bool = False,
) -> tuple[float, float]:
    """(ROC AUC of the positive-class probability, accuracy of the argmax) on ``slices``."""
    probabilities = predict_probabilities(model, slices.images, batch_size, device, flip_averaging)
    return roc_auc(probabilities[:, -1], slices.labels > 0), accuracy(probabilities.argmax(1), slices.labels)


def _class_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=classes).double().clamp(min=1)
    return (counts.sum() / (classes * counts)).float()


def _batches(labels: torch.Tensor, batch_size: int, balance: str, generator: torch.Generator, classes: int):
    n = len(labels)
    if balance == "sampler":
        weights = _class_weights(labels, classes)[labels]
        order = torch.multinomial(weights, n, replacement=True, generator=generator)
    else:
        order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def check_both_classes(labels: torch.Tensor, where: str) -> None:
    """Refuse training slices that hold a single class (every slice negative, or every slice positive):
    a classifier learns nothing from them and its metrics would be meaningless (AUC undefined)."""
    present = sorted(set(labels.reshape(-1).tolist()))
    if len(labels) == 0:
        raise InvalidInputError(f"{where}: no training slices")
    if len(present) < 2:
        raise InvalidInputError(
            f"{where}: every one of the {len(labels)} training slices is of class {present[0]}; "
            "a classifier needs slices of at least two classes (cases with and without lesion)"
        )


LOG_COLUMNS = ("epoch", "train_loss", "val_auc", "val_accuracy", "learning_rate", "seconds")


def write_epoch_log(history: list, path: Path, columns: tuple[str, ...] = LOG_COLUMNS) -> Path:
    """The training log as CSV (one row per epoch record, its ``columns``, by default ``LOG_COLUMNS``; empty
    cells for None, e.g. validation without validation data; ``seconds`` = the epoch's wall time), rewritten
    atomically after every epoch."""
    lines = [",".join(columns)]
    for record in history:
        lines.append(",".join("" if getattr(record, c) is None else f"{getattr(record, c):.6g}" for c in columns))
    return write_text(path, "\n".join(lines) + "\n")


def train_classifier(
    model: nn.Module,
    train: SliceSet,
    validation: SliceSet | None = None,
    config: TrainConfig | None = None,
    augmentation: Augment | None = None,
    log_path: str | Path | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train`` and return the history; see :class:`TrainConfig`.
    ``log_path``: a CSV written after every epoch (:func:`write_epoch_log`), so a run can be followed."""
    config = config or TrainConfig()
    check_both_classes(train.labels, "training set")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    augmentation = augmentation or (default_augmentation(train.images.ndim - 2) if config.augment else None)
    classes = int(max(int(train.labels.max()) + 1, 2))
    model.to(device)
    weights = _class_weights(train.labels, classes).to(device) if config.balance == "loss" else None
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    result = TrainResult()
    best_state, best_score, stale = None, -math.inf, 0
    progress = _progress(config.epochs, config.progress)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum = 0.0
        for index in _batches(train.labels, config.batch_size, config.balance, generator, classes):
            images = train.images[index].to(device, non_blocking=True)
            if augmentation is not None:
                images = augmentation(images, generator)
            with torch.autocast(device.type, enabled=use_amp):
                loss = loss_fn(model(images), train.labels[index].to(device))
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            loss_sum += loss.item() * len(index)
        record = EpochRecord(epoch, loss_sum / len(train), learning_rate=schedule.get_last_lr()[0])
        if validation is not None and len(validation):
            record.val_auc, record.val_accuracy = evaluate(
                model, validation, device=device, flip_averaging=config.flip_averaging
            )
            score = record.val_auc if not math.isnan(record.val_auc) else -record.train_loss
        else:
            score = epoch  # no validation data: keep the last epoch
        record.seconds = time.perf_counter() - started
        result.history.append(record)
        if log_path is not None:
            write_epoch_log(result.history, Path(log_path))
        if score > best_score:
            best_score, stale = score, 0
            best_state = copy.deepcopy(model.state_dict())
            result.best_epoch, result.val_auc, result.val_accuracy = epoch, record.val_auc, record.val_accuracy
        else:
            stale += 1
        progress(record)
        if config.patience and stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


def _progress(epochs: int, enabled: bool):
    if not enabled:
        return lambda record: None
    from tqdm.auto import tqdm

    bar = tqdm(total=epochs, desc="training", unit="epoch", leave=False)

    def update(record: EpochRecord) -> None:
        bar.update(1)
        text = {"loss": f"{record.train_loss:.3f}"}
        if record.val_auc is not None:
            text["val_auc"] = f"{record.val_auc:.3f}"
        bar.set_postfix(text)
        if record.epoch == epochs:
            bar.close()

    return update
