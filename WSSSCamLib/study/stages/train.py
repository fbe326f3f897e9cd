"""The ``train`` stage: every model with ``train`` options is cross-validated on the study's case folds
(``models/<name>/fold<k>/model.pt`` + model card); a finished fold is not retrained. Only the cases the
folds to train need are read; for a fixed split (one fold, training side listed) that is its training
side alone: the test cases are not read, and the cams stage is the first to see them."""

from __future__ import annotations

from ...training.crossval import cross_validate
from ...training.trainer import TrainConfig
from ..context import Shard, StudyContext, in_shard
from ..layout import checkpoint_path, models_folder


def run(context: StudyContext, shard: Shard, progress: bool) -> int:
    """Cross-validate every model that has ``train`` options (only this shard's unfinished folds); returns folds trained."""
    config = context.config
    wanted = [f for f in context.fold_indices if in_shard(f, shard)]
    evaluate_held_out = not context.folds.fixed
    trained = 0
    for spec in config.models:
        if spec.checkpoints:
            continue
        # a fold is finished once cross_validate committed its result.json (written after the checkpoint and card)
        missing = [f for f in wanted if not (checkpoint_path(config.output, spec, f).parent / "result.json").exists()]
        if not missing:
            continue
        needed = {
            c
            for f in missing
            for c in context.folds.training(f) + (context.folds.held_out(f) if evaluate_held_out else [])
        }
        slices = context.slices(progress, sorted(needed))
        options = {"device": config.device, "seed": config.seed, "progress": progress, **spec.train}
        if progress:
            print(f"training {spec.name} ({spec.architecture}) for folds {missing}", flush=True)
        cross_validate(
            context.dataset,
            models_folder(config.output, spec.name),
            spec.architecture,
            context.recipe,
            TrainConfig(**options),
            k=context.fold_count,
            seed=config.seed,
            slices=slices,
            folds=context.folds,
            only_folds=missing,
            evaluate_held_out=evaluate_held_out,
        )
        trained += len(missing)
    return trained
