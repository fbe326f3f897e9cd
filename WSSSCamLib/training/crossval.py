"""Case-level k-fold cross-validation of a slice classifier on a dataset, resumable.

For each fold: the held-out cases are never seen in training; with early stopping
(``config.patience > 0``) one more share of the remaining cases is held back as inner validation,
otherwise every remaining case trains the model and the last epoch's weights are kept; the fold's checkpoint and model card,
its held-out ROC AUC and accuracy and its wall time are written under ``out/fold<i>/``. A fold
whose ``result.json`` exists is not recomputed, so the same command resumes after a crash.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..atomic import write_text
from ..data.datasets import Dataset
from ..data.recipe import SliceRecipe, dataset_slices
from ..data.slices import SliceSet
from ..data.splits import Folds, case_folds, dataset_folds
from ..devices import resolve_device
from ..errors import InvalidInputError
from ..models.zoo import build_model
from .checkpoint import ModelCard, fingerprint, save_checkpoint
from .trainer import TrainConfig, check_both_classes, evaluate, train_classifier


def data_fingerprint(dataset: Dataset) -> str:
    """Fingerprint of the cases' files (case id, file name, size in bytes)."""
    items = []
    for case in dataset.cases:
        for path in [*case.images, *([case.mask] if case.mask else [])]:
            items.append((case.case_id, path.name, str(path.stat().st_size) if path.is_file() else "dir"))
    return fingerprint(items)


@dataclass
class FoldResult:
    """One trained fold: its held-out cases and slices, test ROC AUC and accuracy, best epoch and wall time."""

    fold: int
    test_cases: list[str]
    test_slices: int
    test_positive_slices: int
    auc: float
    accuracy: float
    best_epoch: int
    seconds: float


@dataclass
class CrossValidationReport:
    """The folds of one architecture's cross-validation, with means and a Markdown table."""

    architecture: str
    folds: list[FoldResult] = field(default_factory=list)

    @property
    def mean_auc(self) -> float:
        return sum(f.auc for f in self.folds) / len(self.folds)

    @property
    def mean_accuracy(self) -> float:
        return sum(f.accuracy for f in self.folds) / len(self.folds)

    def table(self) -> str:
        lines = [
            "| fold | test cases | test slices (positive) | ROC AUC | accuracy | best epoch | seconds |",
            "|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for f in self.folds:
            lines.append(
                f"| {f.fold} | {len(f.test_cases)} | {f.test_slices} ({f.test_positive_slices}) | {f.auc:.3f} | {f.accuracy:.3f} | {f.best_epoch} | {f.seconds:.0f} |"
            )
        lines.append(
            f"| mean | | | **{self.mean_auc:.3f}** | {self.mean_accuracy:.3f} | | {sum(f.seconds for f in self.folds):.0f} |"
        )
        return "\n".join(lines)


def _inner_split(cases: list[str], k: int, seed: int) -> tuple[list[str], list[str]]:
    inner = case_folds(cases, k=max(2, min(k - 1, len(cases))), seed=seed + 1)
    return inner.training(0), inner.held_out(0)


def cross_validate(
    dataset: Dataset,
    out_dir: str | Path,
    architecture: str = "small-cnn",
    recipe: SliceRecipe | None = None,
    config: TrainConfig | None = None,
    k: int = 5,
    seed: int = 0,
    slices: SliceSet | None = None,
    folds: Folds | None = None,
    only_folds: Sequence[int] | None = None,
) -> CrossValidationReport:
    """Run (or resume) k-fold case-level cross-validation and write results under ``out_dir``.

    ``folds``: use these case folds (default: the fold policy :func:`~WSSSCamLib.data.splits.dataset_folds`,
    saved as ``folds.json``); ``only_folds``: train just these folds (a shard of the work)."""
    recipe = recipe or SliceRecipe()
    config = config or TrainConfig(seed=seed)
    resolve_device(config.device, "device")  # before any work: a device this machine lacks is refused here
    slices = slices if slices is not None else dataset_slices(dataset, recipe, config.progress)
    check_both_classes(slices.labels, f"{dataset.root}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folds_file = out / "folds.json"
    if folds is None:
        folds = Folds.load(folds_file) if folds_file.exists() else dataset_folds(dataset, k, seed)
    elif folds_file.exists() and Folds.load(folds_file).folds != folds.folds:
        raise InvalidInputError(f"{folds_file}: holds other folds than the ones asked for; use another output folder")
    folds.save(folds_file)
    channel_names = list(dataset.channel_names)
    if recipe.context_channel is not None:
        name = channel_names[recipe.context_channel]
        channel_names += [f"{name} (previous slice)", f"{name} (next slice)"]
    for fold in range(len(folds.folds)):
        if only_folds is None or fold in only_folds:
            check_both_classes(slices.of_cases(folds.training(fold)).labels, f"{dataset.root}: fold {fold}")
    report = CrossValidationReport(architecture)
    for fold in range(len(folds.folds)):
        if only_folds is not None and fold not in only_folds:
            continue
        fold_dir = out / f"fold{fold}"
        result_file = fold_dir / "result.json"
        if result_file.exists():
            report.folds.append(FoldResult(**json.loads(result_file.read_text())))
            continue
        started = time.perf_counter()
        if config.patience > 0:
            train_cases, validation_cases = _inner_split(folds.training(fold), k, seed + fold)
        else:
            train_cases, validation_cases = folds.training(fold), []
        train, validation, test = (
            slices.of_cases(train_cases),
            slices.of_cases(validation_cases),
            slices.of_cases(folds.held_out(fold)),
        )
        torch.manual_seed(seed + fold)
        model = build_model(architecture, slices.images.shape[1], max(2, len(dataset.class_names)))
        fold_config = TrainConfig(**{**asdict(config), "seed": config.seed + fold})
        trained = train_classifier(model, train, validation, fold_config, log_path=fold_dir / "train_log.csv")
        auc, acc = evaluate(model, test, device=config.device, flip_averaging=config.flip_averaging)
        result = FoldResult(
            fold,
            folds.held_out(fold),
            len(test),
            int(test.labels.sum()),
            auc,
            acc,
            trained.best_epoch,
            time.perf_counter() - started,
        )
        card = ModelCard(
            architecture,
            slices.images.shape[1],
            max(2, len(dataset.class_names)),
            list(dataset.class_names),
            channel_names,
            input_size=[recipe.size, recipe.size],
            slice_axis=recipe.axis,
            normalisation=recipe.normalisation(),
            recipe=asdict(recipe),
            split={
                "k": k,
                "seed": folds.seed,
                "fold": fold,
                "train": train_cases,
                "validation": validation_cases,
                "test": folds.held_out(fold),
            },
            data_fingerprint=data_fingerprint(dataset),
            training={**asdict(fold_config), "history": [asdict(h) for h in trained.history]},
            validation={
                "inner_val_auc": trained.val_auc,
                "test_auc": auc,
                "test_accuracy": acc,
                "test_slices": len(test),
                "test_positive_slices": int(test.labels.sum()),
            },
        )
        save_checkpoint(model, card, fold_dir / "model.pt")
        write_text(result_file, json.dumps(asdict(result), indent=2))
        report.folds.append(result)
        if config.progress:
            print(f"fold {fold}: ROC AUC {auc:.3f}, accuracy {acc:.3f}, {result.seconds:.0f} s", flush=True)
    if only_folds is None:
        _write_report(out, report)
    return report


def _write_report(out: Path, report: CrossValidationReport) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["fold", "test_cases", "test_slices", "test_positive_slices", "auc", "accuracy", "best_epoch", "seconds"]
    )
    for f in report.folds:
        writer.writerow(
            [
                f.fold,
                " ".join(f.test_cases),
                f.test_slices,
                f.test_positive_slices,
                f"{f.auc:.4f}",
                f"{f.accuracy:.4f}",
                f.best_epoch,
                f"{f.seconds:.1f}",
            ]
        )
    write_text(out / "cv_results.csv", buffer.getvalue())
    write_text(out / "cv_results.md", report.table() + "\n")
