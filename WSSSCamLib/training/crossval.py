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
from ..data.recipe import Recipe, SliceRecipe, dataset_slices, input_channel_names
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


FIXED_SPLIT_INNER_FOLDS = 5
"""A fixed split (one fold) with early stopping and no ``validation`` list holds back one share of
``FIXED_SPLIT_INNER_FOLDS - 1`` (a quarter) of its training cases as the inner validation set."""


def fold_cases(folds: Folds, fold: int, k: int, seed: int, patience: int) -> tuple[list[str], list[str]]:
    """(training cases, inner validation cases) of ``fold``: the split's ``validation`` list where it gives
    one; else, with early stopping (``patience`` > 0), one share of the training cases (seeded); else none."""
    given = folds.validation_of(fold)
    if given is not None:
        return [c for c in folds.training(fold) if c not in given], given
    if patience > 0:
        return _inner_split(folds.training(fold), FIXED_SPLIT_INNER_FOLDS if folds.fixed else k, seed + fold)
    return folds.training(fold), []


def cross_validate(
    dataset: Dataset,
    out_dir: str | Path,
    architecture: str = "small-cnn",
    recipe: Recipe | None = None,
    config: TrainConfig | None = None,
    k: int = 5,
    seed: int = 0,
    slices: SliceSet | None = None,
    folds: Folds | None = None,
    only_folds: Sequence[int] | None = None,
    evaluate_held_out: bool = True,
) -> CrossValidationReport:
    """Run (or resume) k-fold case-level cross-validation and write results under ``out_dir``.

    ``folds``: use these case folds (default: the fold policy :func:`~WSSSCamLib.data.splits.dataset_folds`,
    saved as ``folds.json``; a fixed split is one fold, see :func:`~WSSSCamLib.data.splits.fixed_split`);
    ``only_folds``: train just these folds (a shard of the work). Without ``slices`` only the cases the
    folds to train need are read: their training sides, and their held-out cases when ``evaluate_held_out``.
    ``evaluate_held_out=False`` never reads the held-out cases: the fold's held-out ROC AUC and accuracy
    are NaN (the model card says so; a study measures its held-out cases in the ``cams`` stage)."""
    recipe = recipe or SliceRecipe()
    config = config or TrainConfig(seed=seed)
    resolve_device(config.device, "device")  # before any work: a device this machine lacks is refused here
    out = Path(out_dir)
    folds_file = out / "folds.json"
    if folds is None:
        folds = Folds.load(folds_file) if folds_file.exists() else dataset_folds(dataset, k, seed)
    elif folds_file.exists() and not Folds.load(folds_file).same_cases(folds):
        raise InvalidInputError(f"{folds_file}: holds other folds than the ones asked for; use another output folder")
    known = {c.case_id for c in dataset.cases}
    unknown = sorted(c for c in folds.cases() if c not in known)
    if unknown:
        raise InvalidInputError(f"{folds_file}: the folds name cases that {dataset.root} lacks: {unknown[:5]}")
    k = len(folds.folds)
    wanted = [f for f in range(k) if only_folds is None or f in only_folds]
    if slices is None:
        needed = {c for f in wanted for c in folds.training(f) + (folds.held_out(f) if evaluate_held_out else [])}
        slices = dataset_slices(dataset.subset(needed), recipe, config.progress)
    check_both_classes(slices.labels, f"{dataset.root}")  # before any output is written
    out.mkdir(parents=True, exist_ok=True)
    folds.save(folds_file)
    channel_names = input_channel_names(dataset.channel_names, recipe.context_channel)
    for fold in wanted:
        check_both_classes(slices.of_cases(folds.training(fold)).labels, f"{dataset.root}: fold {fold}")
    report = CrossValidationReport(architecture)
    for fold in wanted:
        fold_dir = out / f"fold{fold}"
        result_file = fold_dir / "result.json"
        if result_file.exists():
            report.folds.append(FoldResult(**json.loads(result_file.read_text())))
            continue
        started = time.perf_counter()
        train_cases, validation_cases = fold_cases(folds, fold, k, seed, config.patience)
        held_out = folds.held_out(fold) if evaluate_held_out else []
        train, validation, test = (
            slices.of_cases(train_cases),
            slices.of_cases(validation_cases),
            slices.of_cases(held_out),
        )
        torch.manual_seed(seed + fold)
        model = build_model(architecture, slices.images.shape[1], max(2, len(dataset.class_names)), recipe.spatial_dims)
        fold_config = TrainConfig(**{**asdict(config), "seed": config.seed + fold})
        trained = train_classifier(model, train, validation, fold_config, log_path=fold_dir / "train_log.csv")
        if len(test):
            auc, acc = evaluate(model, test, device=config.device, flip_averaging=config.flip_averaging)
        else:  # nothing held out (train on all), or held-out cases left to the study's cams stage
            auc, acc = float("nan"), float("nan")
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
            spatial_dims=recipe.spatial_dims,
            input_size=recipe.input_size,
            slice_axis=recipe.axis,
            normalisation=recipe.normalisation(),
            recipe=asdict(recipe),
            split={
                "k": k,
                "fixed": folds.fixed,
                "seed": folds.seed,
                "fold": fold,
                "train": train_cases,
                "validation": validation_cases,
                "test": folds.held_out(fold),
            },
            data_fingerprint=data_fingerprint(dataset.subset(train_cases + validation_cases + held_out)),
            training={**asdict(fold_config), "history": [asdict(h) for h in trained.history]},
            validation={
                "inner_val_auc": trained.val_auc,
                **(
                    {
                        "test_auc": auc,
                        "test_accuracy": acc,
                        "test_slices": len(test),
                        "test_positive_slices": int(test.labels.sum()),
                    }
                    if len(test)
                    else {
                        "held_out": "none (trained on every case)"
                        if not folds.held_out(fold)
                        else "not evaluated here (not read while training; the study's cams stage measures it)"
                    }
                ),
            },
        )
        save_checkpoint(model, card, fold_dir / "model.pt")
        write_text(result_file, json.dumps(asdict(result), indent=2))
        report.folds.append(result)
        if config.progress:
            print(f"fold {fold}: held-out ROC AUC {auc:.3f}, accuracy {acc:.3f}, {result.seconds:.0f} s", flush=True)
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
