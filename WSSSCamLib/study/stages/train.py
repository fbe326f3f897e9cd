"""The ``train`` stage: every model with ``train`` options is cross-validated on the study's case folds
(``models/<name>/fold<k>/model.pt`` + model card); a finished fold is not retrained."""

from __future__ import annotations

from ...training.crossval import cross_validate
from ...training.trainer import TrainConfig
from ..context import Shard, StudyContext, in_shard
from ..layout import checkpoint_path, models_folder


def run(context: StudyContext, shard: Shard, progress: bool) -> int:
    """Cross-validate every model that has ``train`` options (only this shard's unfinished folds); returns folds trained."""
    config = context.config
    wanted = [f for f in range(context.fold_count) if in_shard(f, shard)]
    trained = 0
    for spec in config.models:
        if spec.checkpoints:
            continue
        # a fold is finished once cross_validate committed its result.json (written after the checkpoint and card)
        missing = [f for f in wanted if not (checkpoint_path(config.output, spec, f).parent / "result.json").exists()]
        if not missing:
            continue
        slices = context.slices(progress)
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
        )
        trained += len(missing)
    return trained
