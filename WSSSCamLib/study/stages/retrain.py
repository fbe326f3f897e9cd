"""The ``retrain`` stage (with ``filtered_retraining``): the filtered retraining of Guan & Loew (2021) on
CAM- and mask-filtered slices, one result file per variant x fold (:mod:`WSSSCamLib.study.retraining`),
recomputed only when its settings or the fold checkpoint changed; and the tables the report shows."""

from __future__ import annotations

import pandas as pd

from ...devices import resolve_device
from .. import retraining
from ..context import Shard, StudyContext, in_shard
from ..layout import checkpoint_path


def _options(context: StudyContext, fold: int) -> dict:
    """Training options of the retraining: the checkpoint's own (from its card), overridden by the model's ``train``."""
    spec = context.model_spec(context.config.filtered_retraining.model)
    card = context.checkpoint(spec, fold).card
    return {**{k: v for k, v in (card.training or {}).items() if k != "history"}, **spec.train}


def _fingerprint(context: StudyContext, fold: int, variant: str) -> str:
    """The fingerprint a variant x fold result must carry to count as done with the current settings."""
    spec = context.model_spec(context.config.filtered_retraining.model)
    return retraining.result_fingerprint(
        context.config.filtered_retraining,
        variant,
        context.config.seed,
        _options(context, fold),
        context.checkpoint(spec, fold).sha256,
    )


def run(context: StudyContext, shard: Shard, progress: bool) -> int:
    """Run the filtered retraining (``config.filtered_retraining``) for this shard's folds; returns trainings run."""
    config = context.config
    spec = config.filtered_retraining
    if spec is None:
        return 0
    model_spec = context.model_spec(spec.model)
    todo = [(variant, fold) for fold in range(context.fold_count) if in_shard(fold, shard) for variant in spec.variants]
    done = 0
    for variant, fold in todo:
        checkpoint = context.checkpoint(model_spec, fold)
        fingerprint = _fingerprint(context, fold, variant)
        if retraining.stored_fingerprint(config.output, variant, fold) == fingerprint:
            continue  # finished with these settings
        slices = context.slices(progress)
        if progress:
            print(
                f"filtered retraining: {spec.model} on {variant}-filtered slices, fold {fold} ({spec.epochs} epochs)",
                flush=True,
            )
        result = retraining.retrain_fold(
            slices,
            context.folds,
            fold,
            checkpoint.card.architecture,
            checkpoint.card.num_classes,
            lambda fold=fold: context.fold_model(model_spec, fold, resolve_device(config.device)),
            spec,
            variant,
            _options(context, fold),
            config.seed,
            config.batch_size,
            config.device,
            fingerprint,
        )
        retraining.write_result(config.output, result)
        done += 1
        if progress:
            print(
                f"  ROC AUC {result['auc']:.3f}, accuracy {result['accuracy']:.3f}, {result['seconds']:.0f} s",
                flush=True,
            )
    return done


def stale_results(context: StudyContext) -> list[str]:
    """Variant/fold results missing, or computed with other settings or another checkpoint ('variant/fold<k>')."""
    spec = context.config.filtered_retraining
    model_spec = context.model_spec(spec.model)
    stale = []
    for fold in range(context.fold_count):
        present = checkpoint_path(context.output, model_spec, fold).exists()
        for variant in spec.variants:
            stored = retraining.stored_fingerprint(context.output, variant, fold)
            if not present or stored != _fingerprint(context, fold, variant):
                stale.append(f"{variant}/fold{fold}")
    return stale


def retraining_tables(context: StudyContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per fold, summary) of the filtered retraining, with the model's own checkpoints as variant
    ``checkpoint`` (test AUC/accuracy from their model cards, trained as they were)."""
    spec = context.config.filtered_retraining
    table = retraining.retraining_table(context.output, spec.variants, context.fold_count)
    model_spec = context.model_spec(spec.model)
    rows = []
    for fold in range(context.fold_count):
        if checkpoint_path(context.output, model_spec, fold).exists():
            card = context.checkpoint(model_spec, fold).card
            validation, training = card.validation or {}, card.training or {}
            if "test_accuracy" in validation:
                rows.append(
                    {
                        "variant": "checkpoint",
                        "fold": fold,
                        "test_slices": None,
                        "test_positive_slices": None,
                        "auc": validation.get("test_auc"),
                        "accuracy": validation["test_accuracy"],
                        "epochs": training.get("epochs"),
                        "seconds": None,
                    }
                )
    if rows:
        table = pd.concat([pd.DataFrame(rows), table], ignore_index=True)
    return table, retraining.retraining_summary(table)
