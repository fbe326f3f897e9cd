"""Running a study: train (per fold), map (per case and fold), report — resumable and shardable.

Stages, each safe to stop at any point and to run again:

1. ``train``: every model with ``train`` options is cross-validated on the study's case folds
   (``models/<name>/fold<k>/model.pt`` + model card); a finished fold is not retrained.
2. ``cams``: every (case, fold) unit (see :mod:`WSSSCamLib.study.units`); a unit whose marker
   exists is skipped, so a killed run continues where it stopped without duplicating rows.
3. ``report``: the units are gathered into the study tables, figures and ``report.html``.

3b. ``retrain`` (with ``filtered_retraining``): seed 003's retraining on CAM- and mask-filtered
   slices, one result file per variant x fold (:mod:`WSSSCamLib.study.retraining`).

``shard=(i, n)`` restricts ``train`` and ``retrain`` to folds ``k`` with ``k % n == i`` and ``cams`` to cases whose
position in the dataset is ``i`` modulo ``n``; the ``report`` stage reads every unit present, so
after all shards finished (in one output folder, or gathered by :func:`merge_outputs`) it gives
the same tables as one unsharded run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from ..atomic import atomic_path, remove_stale_temporaries, write_text
from ..data.datasets import Dataset, read_csv_dataset, read_decathlon
from ..data.recipe import SliceRecipe, dataset_slices
from ..data.splits import Folds, case_folds
from ..devices import resolve_device
from ..errors import InvalidInputError, MissingFileError, NotReadyError
from ..inference.volume_cams import cam_engine_for
from ..lock import folder_lock
from ..paths import check_case_id, output_path
from ..training.checkpoint import (
    card_path,
    library_versions,
    load_checkpoint,
    read_card,
)
from ..training.crossval import cross_validate
from ..training.trainer import TrainConfig
from . import aggregate, retraining
from .config import ModelSpec, StudyConfig
from .units import (
    FoldModel,
    Timings,
    read_case_slices,
    test_unit,
    train_unit,
    unit_done,
    write_parquet,
    write_unit,
)

STAGES = ("train", "cams", "retrain", "report")


def read_dataset(config: StudyConfig) -> Dataset:
    """The study's dataset, with external measures merged from ``config.measures`` (CSV: case, measures...)."""
    if config.csv:
        dataset = read_csv_dataset(config.dataset, config.csv)
    else:
        dataset = read_decathlon(config.dataset, allow_outside=config.allow_outside_dataset)
    if config.measures is not None:
        try:
            table = pd.read_csv(config.measures, dtype={"case": str})
        except (OSError, pd.errors.ParserError) as error:
            raise InvalidInputError(f"{config.measures}: cannot read the measures table ({error})") from None
        if "case" not in table.columns:
            raise InvalidInputError(f"{config.measures}: needs a 'case' column, has {list(table.columns)}")
        rows = table.set_index(table["case"].astype(str))
        for case in dataset.cases:
            if case.case_id in rows.index:
                values = rows.loc[case.case_id].drop("case")
                try:
                    case.measures.update({k: float(v) for k, v in values.items()})
                except (TypeError, ValueError):
                    raise InvalidInputError(f"{config.measures}: case '{case.case_id}' has a non-numeric measure in {dict(values)}") from None
    return dataset


def recipe_of(config: StudyConfig, dataset: Dataset) -> SliceRecipe:
    values = dict(config.recipe)
    if values.get("context_channel") is not None:
        try:
            values["context_channel"] = dataset.channel_index(values["context_channel"])
        except KeyError as error:
            raise InvalidInputError(f"{config.source}: recipe.context_channel: {error.args[0]}") from None
    if "clip_percentiles" in values:
        values["clip_percentiles"] = tuple(values["clip_percentiles"])
    return SliceRecipe(**values)


def study_folds(config: StudyConfig, dataset: Dataset) -> Folds:
    """The study's case folds: loaded from ``output/folds.json`` when present (checked), else seeded and saved."""
    case_ids = [c.case_id for c in dataset.cases]
    path = config.output / "folds.json"
    if path.exists():
        folds = Folds.load(path)
        if sorted(c for f in folds.folds for c in f) != sorted(case_ids):
            raise InvalidInputError(f"{path}: its folds hold other cases than {config.dataset}; use a new output folder")
        return folds
    if config.folds_file is not None:
        if not config.folds_file.exists():
            raise MissingFileError(f"{config.folds_file}: folds_file of {config.source} does not exist")
        folds = Folds.load(config.folds_file)
        if sorted(c for f in folds.folds for c in f) != sorted(case_ids):
            raise InvalidInputError(f"{config.folds_file}: its folds hold other cases than {config.dataset}")
    else:
        folds = case_folds(case_ids, config.folds, config.seed)
    config.output.mkdir(parents=True, exist_ok=True)
    folds.save(path)
    return folds


def checkpoint_path(config: StudyConfig, spec: ModelSpec, fold: int) -> Path:
    if spec.checkpoints:
        return Path(spec.checkpoints.format(fold=fold))
    return config.output / "models" / spec.name / f"fold{fold}" / "model.pt"


def _in_shard(index: int, shard: tuple[int, int]) -> bool:
    return index % shard[1] == shard[0]


def train_stage(config: StudyConfig, dataset: Dataset, folds: Folds, recipe: SliceRecipe, shard: tuple[int, int], progress: bool) -> None:
    """Cross-validate every model that has ``train`` options (only this shard's folds)."""
    wanted = [f for f in range(len(folds.folds)) if _in_shard(f, shard)]
    slices = None
    for spec in config.models:
        if spec.checkpoints:
            continue
        # a fold is finished once cross_validate committed its result.json (written after the checkpoint and card)
        missing = [f for f in wanted if not (checkpoint_path(config, spec, f).parent / "result.json").exists()]
        if not missing:
            continue
        slices = slices if slices is not None else dataset_slices(dataset, recipe, progress)
        options = {"device": config.device, "seed": config.seed, "progress": progress, **spec.train}
        if progress:
            print(f"training {spec.name} ({spec.architecture}) for folds {missing}", flush=True)
        cross_validate(dataset, config.output / "models" / spec.name, spec.architecture, recipe, TrainConfig(**options),
                       k=len(folds.folds), seed=config.seed, slices=slices, folds=folds, only_folds=missing)


def _checked_card(config: StudyConfig, spec: ModelSpec, folds: Folds, fold: int, recipe: SliceRecipe):
    """The model card of ``spec``'s fold checkpoint (weights not read); refuses one whose card says it
    was tested on other cases than the fold's (leakage) or trained on slices made another way."""
    path = checkpoint_path(config, spec, fold)
    if not path.exists():
        raise MissingFileError(f"{path}: no checkpoint of model '{spec.name}' for fold {fold}; run the 'train' stage first")
    card = read_card(card_path(path))
    held_out = card.split.get("test") if card.split else None
    if held_out is not None and sorted(held_out) != sorted(folds.held_out(fold)):
        raise InvalidInputError(f"{path}: this checkpoint held out other cases than fold {fold} of the study; its training cases "
                         "would leak into the evaluation (use the folds it was trained with: folds_file)")
    if card.recipe and SliceRecipe.from_card(card) != recipe:
        raise InvalidInputError(f"{path}: trained on slices made another way ({SliceRecipe.from_card(card)}) than the study's recipe ({recipe})")
    return card


def _checked_checkpoint(config: StudyConfig, spec: ModelSpec, folds: Folds, fold: int, device: torch.device, recipe: SliceRecipe):
    """(model, card) of ``spec``'s fold checkpoint, its card checked by ``_checked_card``."""
    card = _checked_card(config, spec, folds, fold, recipe)
    return load_checkpoint(checkpoint_path(config, spec, fold), card=card, device=device)


def _fold_models(config: StudyConfig, folds: Folds, fold: int, device: torch.device, recipe: SliceRecipe) -> list[FoldModel]:
    """The fold's models, each checked by ``_checked_checkpoint``."""
    models = []
    for spec in config.models:
        model, card = _checked_checkpoint(config, spec, folds, fold, device, recipe)
        models.append(FoldModel(spec.name, model.eval(), card, cam_engine_for(model, card), config.methods_of(spec)))
    return models


def cams_stage(config: StudyConfig, dataset: Dataset, folds: Folds, recipe: SliceRecipe, shard: tuple[int, int], progress: bool) -> int:
    """Compute every unfinished unit of this shard's cases; returns the number of units computed."""
    device = resolve_device(config.device)
    fold_of = {case_id: f for f, cases in enumerate(folds.folds) for case_id in cases}
    cases = [c for i, c in enumerate(dataset.cases) if _in_shard(i, shard)]
    todo = []
    for case in cases:
        for fold in range(len(folds.folds)):
            role = "test" if fold_of[case.case_id] == fold else "train"
            if (role == "test" or config.ensembles) and not unit_done(config.output, case.case_id, fold):
                todo.append((case, fold, role))
    models: dict[int, list[FoldModel]] = {}
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="cams", unit="unit")
    current = None
    for case, fold, role in todo:
        timings = Timings()
        with timings.stage("read+preprocess"):
            if current is None or current.case_id != case.case_id:
                current = read_case_slices(case, recipe)
        if fold not in models:
            models[fold] = _fold_models(config, folds, fold, device, recipe)
        if role == "test":
            slices, agreement = test_unit(current, fold, models[fold], config, device, timings)
        else:
            slices, agreement = train_unit(current, fold, models[fold], config, device, timings), None
        with timings.stage("write"):
            write_unit(config.output, case.case_id, fold, role, slices, agreement, timings, len(current.inputs))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return len(todo)


def retrain_stage(config: StudyConfig, dataset: Dataset, folds: Folds, recipe: SliceRecipe, shard: tuple[int, int], progress: bool) -> int:
    """Seed 003's filtered retraining (``config.filtered_retraining``) for this shard's folds; returns trainings run."""
    spec = config.filtered_retraining
    if spec is None:
        return 0
    model_spec = next(m for m in config.models if m.name == spec.model)
    todo = [(variant, fold) for fold in range(len(folds.folds)) if _in_shard(fold, shard) for variant in spec.variants]
    slices = None
    done = 0
    for variant, fold in todo:
        card = _checked_card(config, model_spec, folds, fold, recipe)
        options = _retraining_options(card, model_spec)
        fingerprint = _retraining_fingerprint(config, model_spec, card, fold, variant)
        if retraining.stored_fingerprint(config.output, variant, fold) == fingerprint:
            continue  # finished with these settings
        slices = slices if slices is not None else dataset_slices(dataset, recipe, progress)
        if progress:
            print(f"filtered retraining: {spec.model} on {variant}-filtered slices, fold {fold} ({spec.epochs} epochs)", flush=True)
        result = retraining.retrain_fold(slices, folds, fold, card.architecture, card.num_classes, checkpoint_path(config, model_spec, fold),
                                         spec, variant, options, config.seed, config.batch_size, config.device, fingerprint)
        retraining.write_result(config.output, result)
        done += 1
        if progress:
            print(f"  ROC AUC {result['auc']:.3f}, accuracy {result['accuracy']:.3f}, {result['seconds']:.0f} s", flush=True)
    return done


def _retraining_options(card, model_spec: ModelSpec) -> dict:
    """Training options of the retraining: the checkpoint's own (from its card), overridden by the model's ``train``."""
    return {**{k: v for k, v in (card.training or {}).items() if k != "history"}, **model_spec.train}


def _retraining_fingerprint(config: StudyConfig, model_spec: ModelSpec, card, fold: int, variant: str) -> str:
    checkpoint = checkpoint_path(config, model_spec, fold)
    return retraining.result_fingerprint(config.filtered_retraining, variant, config.seed, _retraining_options(card, model_spec),
                                         _sha256(checkpoint))


def _stale_retraining(config: StudyConfig, folds: Folds) -> list[str]:
    """Variant/fold results missing, or computed with other settings or another checkpoint."""
    spec = config.filtered_retraining
    model_spec = next(m for m in config.models if m.name == spec.model)
    stale = []
    for fold in range(len(folds.folds)):
        path = checkpoint_path(config, model_spec, fold)
        card = read_card(card_path(path)) if card_path(path).exists() else None
        for variant in spec.variants:
            stored = retraining.stored_fingerprint(config.output, variant, fold)
            if card is None or stored != _retraining_fingerprint(config, model_spec, card, fold, variant):
                stale.append(f"{variant}/fold{fold}")
    return stale


def retraining_tables(config: StudyConfig, folds: Folds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per fold, summary) of the filtered retraining, with the model's own checkpoints as variant
    ``checkpoint`` (test AUC/accuracy from their model cards, trained as they were)."""
    spec = config.filtered_retraining
    table = retraining.retraining_table(config.output, spec.variants, len(folds.folds))
    model_spec = next(m for m in config.models if m.name == spec.model)
    rows = []
    for fold in range(len(folds.folds)):
        path = card_path(checkpoint_path(config, model_spec, fold))
        if path.exists():
            card = read_card(path)
            validation, training = card.validation or {}, card.training or {}
            if "test_accuracy" in validation:
                rows.append({"variant": "checkpoint", "fold": fold, "test_slices": None, "test_positive_slices": None,
                             "auc": validation.get("test_auc"), "accuracy": validation["test_accuracy"],
                             "epochs": training.get("epochs"), "seconds": None})
    if rows:
        table = pd.concat([pd.DataFrame(rows), table], ignore_index=True)
    return table, retraining.retraining_summary(table)


def gather_units(output: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """All finished units' slice rows, agreement rows and markers (units without a marker are ignored)."""
    slices, agreement, markers = [], [], []
    for marker_path in sorted((output / "units").glob("*/fold*.json")):
        marker = json.loads(marker_path.read_text())
        stem = marker_path.name[: -len(".json")]
        slices.append(pd.read_parquet(marker_path.with_name(f"{stem}.slices.parquet")))
        if marker["role"] == "test":
            agreement.append(pd.read_parquet(marker_path.with_name(f"{stem}.agreement.parquet")))
        markers.append(marker)
    if not slices:
        raise MissingFileError(f"{output}: no finished units; run the 'cams' stage first")
    return pd.concat(slices, ignore_index=True), (pd.concat(agreement, ignore_index=True) if agreement else pd.DataFrame()), markers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cases_table(dataset: Dataset, folds: Folds, slices: pd.DataFrame) -> pd.DataFrame:
    fold_of = {case_id: f for f, cases in enumerate(folds.folds) for case_id in cases}
    empty = slices[(slices["kind"] == "empty") & (slices["role"] == "test")]
    abnormal = empty.assign(abnormal=empty["fn"] > 0).groupby("case")["abnormal"].agg(["size", "sum"])
    rows = []
    for case in dataset.cases:
        row = {"case": case.case_id, "fold": fold_of[case.case_id], "label": case.label, "has_mask": case.mask is not None,
               "slices": int(abnormal["size"].get(case.case_id, 0)), "abnormal_slices": int(abnormal["sum"].get(case.case_id, 0))}
        rows.append({**row, **case.measures})
    return pd.DataFrame(rows)


def report_stage(config: StudyConfig, dataset: Dataset, folds: Folds, started: float, progress: bool) -> Path:
    """Gather the units into the study tables, figures, overlays and ``report.html``; returns the report's path."""
    from .. import report
    from .overlays import example_overlays

    output = config.output
    slices, agreement, markers = gather_units(output)
    fold_count = len(folds.folds)
    if config.ensembles:  # the grid search needs every training unit too
        expected = {(c.case_id, f) for c in dataset.cases for f in range(fold_count)}
    else:
        expected = {(c, f) for f, cases in enumerate(folds.folds) for c in cases}
    missing = sorted(expected - {(m["case"], m["fold"]) for m in markers})
    if missing:
        raise NotReadyError(f"{output}: {len(missing)} units are not finished yet (e.g. case {missing[0][0]}, fold {missing[0][1]}); "
                           "run the 'cams' stage of every shard first")
    if config.filtered_retraining is not None:
        absent = _stale_retraining(config, folds)
        if absent:
            raise NotReadyError(f"{output}: filtered retraining {', '.join(absent)} not finished (or done with other settings); "
                               "run the 'retrain' stage (of every shard) first")
    grid = aggregate.grid_search_table(slices)
    test = aggregate.test_rows(slices, grid)
    test, cv_thresholds = aggregate.with_cross_validated_thresholds(test)
    write_text(output / "cv_thresholds.csv", cv_thresholds.to_csv(index=False))
    results = aggregate.results_table(test)
    cases = cases_table(dataset, folds, slices)
    write_parquet(test, output / "slices.parquet")
    write_parquet(results, output / "results.parquet")
    write_text(output / "results.csv", results.to_csv(index=False))
    write_parquet(agreement, output / "agreement.parquet")
    write_parquet(grid, output / "threshold_grid.parquet")
    write_parquet(cases, output / "cases.parquet")
    figures_dir = output / "figures"
    figures = {}
    fixed = sorted(r for r in results["result"].unique() if r.startswith("t="))
    shown = "t=0.50" if "t=0.50" in fixed else (fixed[len(fixed) // 2] if fixed else "t=0.50")
    if not agreement.empty and (agreement["result"] == shown).any():
        figures["agreement"] = report.agreement_boxplots(agreement, figures_dir / "agreement.png", result=shown)
    if not grid.empty:
        figures["threshold grid"] = report.threshold_grid_heatmap(grid, figures_dir / "threshold_grid.png")
    measure = next((c for c in cases.columns if c not in ("case", "fold", "label", "has_mask", "slices", "abnormal_slices")), None)
    correlation = report.correlation_table(results, cases, measure, result=shown)
    if not correlation.empty:
        figures["correlation"] = report.correlation_heatmap(correlation, figures_dir / "correlation.png")
    figures["thresholds"] = report.threshold_curves(results, figures_dir / "thresholds.png")
    overlays = example_overlays(config, dataset, folds, results, figures_dir, config.overlays) if config.overlays else []
    provenance = {
        "config": config.as_dict(), "command": " ".join(sys.argv), "versions": {**library_versions(), "platform": platform.platform()},
        "checkpoints": {f"{spec.name}/fold{f}": _sha256(checkpoint_path(config, spec, f)) for spec in config.models for f in range(len(folds.folds))
                        if checkpoint_path(config, spec, f).exists()},
        "seeds": {"study": config.seed, "folds": folds.seed}, "folds": folds.folds,
        "units": len(markers), "unit_seconds": _stage_seconds(markers),
        "report_written": time.strftime("%Y-%m-%d %H:%M:%S"), "report_seconds": round(time.perf_counter() - started, 1),
    }
    write_text(output / "provenance.json", json.dumps(provenance, indent=1, default=str))
    statistics = aggregate.statistics_table(results, cases, measure, shown)
    write_text(output / "statistics.csv", statistics.to_csv(index=False))
    tables = {f"Statistical tests at {shown}": statistics}
    if config.filtered_retraining is not None:
        per_fold, summary = retraining_tables(config, folds)
        write_text(output / "retraining.csv", per_fold.to_csv(index=False))
        spec = config.filtered_retraining
        tables[f"Retraining {spec.model} on filtered slices (seed 003; cam = {spec.method} map, {spec.epochs} epochs; "
               "checkpoint = the model as trained)"] = summary
    path = report.write_report(output, results, agreement, grid, cases, provenance, figures, overlays,
                               tables=tables, correlation_result=shown)
    if progress:
        print(f"report: {path}", flush=True)
    return path


def _stage_seconds(markers: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for marker in markers:
        for stage, seconds in marker["seconds"].items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    return {k: round(v, 2) for k, v in totals.items()}


def config_fingerprint(config: StudyConfig) -> str:
    """A hash of everything that decides what a unit computes (not the output folder, device, batch size, overlays or path permissions)."""
    ignored = ("output", "device", "batch_size", "overlays", "source", "allow_outside_dataset")
    data = {k: v for k, v in config.as_dict().items() if k not in ignored}
    data["filtered_retraining"] = None  # retraining results carry their own fingerprint (retraining.result_fingerprint)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_config_unchanged(config: StudyConfig) -> None:
    """Write ``config.json``; refuse to mix units of another configuration into this output folder."""
    path = config.output / "config.json"
    fingerprint = config_fingerprint(config)
    if path.exists() and any((config.output / "units").glob("*/fold*.json")):
        previous = json.loads(path.read_text()).get("fingerprint")
        if previous not in (None, fingerprint):
            raise InvalidInputError(f"{path}: the units in {config.output} were computed with another configuration "
                             f"(fingerprint {previous}, now {fingerprint}); use a new output folder, or delete its units/ folder to recompute")
    write_text(path, json.dumps({**config.as_dict(), "fingerprint": fingerprint}, indent=1))


def run_study(config: StudyConfig, shard: tuple[int, int] = (0, 1), stages=STAGES, progress: bool = True) -> Path | None:
    """Run the given stages of the study; returns the report's path when the report stage ran."""
    if not (0 <= shard[0] < shard[1]):
        raise InvalidInputError(f"shard {shard[0]}/{shard[1]}: expected i/n with 0 <= i < n")
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise InvalidInputError(f"unknown stages {sorted(unknown)}; stages are {list(STAGES)}")
    started = time.perf_counter()
    check_devices(config)
    with folder_lock(config.output, shard, what=f"wssscam study, stages {','.join(stages)}") as alone:
        if alone:  # no other process writes here: what killed writers left behind can go
            remove_stale_temporaries(config.output)
        dataset = read_dataset(config)
        recipe = recipe_of(config, dataset)
        folds = study_folds(config, dataset)
        _check_config_unchanged(config)
        if "train" in stages:
            train_stage(config, dataset, folds, recipe, shard, progress)
        if "cams" in stages:
            cams_stage(config, dataset, folds, recipe, shard, progress)
        if "retrain" in stages:
            retrain_stage(config, dataset, folds, recipe, shard, progress)
        if "report" in stages:
            return report_stage(config, dataset, folds, started, progress)
    return None


def check_devices(config: StudyConfig) -> None:
    """Refuse, before any work, a study device or a model's training device that this machine does not have."""
    resolve_device(config.device, f"{config.source}: device")
    for index, spec in enumerate(config.models):
        if "device" in spec.train:
            resolve_device(spec.train["device"], f"{config.source}: models[{index}].train.device")


def merge_outputs(target: str | Path, sources: list[str | Path]) -> int:
    """Copy the finished units (and models, folds) of shard output folders into ``target``; returns units copied.

    Refuses sources whose ``folds.json`` differs (different studies). Then run the ``report`` stage on ``target``.
    """
    target = Path(target)
    folds_text = None
    copied = 0
    for source in map(Path, sources):
        folds_file = source / "folds.json"
        if not folds_file.exists():
            raise MissingFileError(f"{folds_file}: missing; {source} is not a study output folder")
        text = json.dumps(json.loads(folds_file.read_text()), sort_keys=True)
        if folds_text is not None and text != folds_text:
            raise InvalidInputError(f"{folds_file}: other folds than the first shard's; these outputs are not shards of one study")
        folds_text = text
        target.mkdir(parents=True, exist_ok=True)
        if not (target / "folds.json").exists():
            shutil.copy2(folds_file, target / "folds.json")
        for marker in sorted((source / "units").glob("*/fold*.json")):
            stem = marker.name[: -len(".json")]
            destination = output_path(target, "units", check_case_id(marker.parent.name, str(marker)))
            destination.mkdir(parents=True, exist_ok=True)
            for part in sorted(marker.parent.glob(f"{stem}.*.parquet")):
                shutil.copy2(part, destination / part.name)
            with atomic_path(destination / marker.name) as temporary:  # the marker last and whole: the unit is complete
                shutil.copyfile(marker, temporary)
            copied += 1
        for result in sorted((source / "retraining").glob("*/fold*.json")):  # filtered retraining, one file per variant x fold
            destination = target / result.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(destination) as temporary:
                shutil.copyfile(result, temporary)
        models = source / "models"
        if models.exists():
            for checkpoint in models.rglob("*"):
                if checkpoint.is_file():
                    destination = target / checkpoint.relative_to(source)
                    if not destination.exists():
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(checkpoint, destination)
    return copied


__all__ = ["STAGES", "merge_outputs", "read_dataset", "run_study"]
