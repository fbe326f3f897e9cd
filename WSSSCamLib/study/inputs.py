"""What a study reads before any stage: its dataset (with external measures), slice recipe and folds."""

from __future__ import annotations

import pandas as pd

from ..data.datasets import Dataset, read_csv_dataset, read_decathlon
from ..data.recipe import SliceRecipe
from ..data.splits import Folds, dataset_folds
from ..errors import InvalidInputError, MissingFileError
from .config import StudyConfig
from .layout import folds_file


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
                    raise InvalidInputError(
                        f"{config.measures}: case '{case.case_id}' has a non-numeric measure in {dict(values)}"
                    ) from None
    return dataset


def recipe_of(config: StudyConfig, dataset: Dataset) -> SliceRecipe:
    """The study's :class:`SliceRecipe` from ``config.recipe`` (a context channel named by the dataset's channel name)."""
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
    """The study's case folds: loaded from ``output/folds.json`` when present (checked), else from
    ``config.folds_file``, else made by the one fold policy (:func:`~WSSSCamLib.data.splits.dataset_folds`);
    saved as ``output/folds.json``."""
    case_ids = [c.case_id for c in dataset.cases]
    path = folds_file(config.output)
    if path.exists():
        folds = Folds.load(path)
        if sorted(c for f in folds.folds for c in f) != sorted(case_ids):
            raise InvalidInputError(
                f"{path}: its folds hold other cases than {config.dataset}; use a new output folder"
            )
        return folds
    if config.folds_file is not None:
        if not config.folds_file.exists():
            raise MissingFileError(f"{config.folds_file}: folds_file of {config.source} does not exist")
        folds = Folds.load(config.folds_file)
        if sorted(c for f in folds.folds for c in f) != sorted(case_ids):
            raise InvalidInputError(f"{config.folds_file}: its folds hold other cases than {config.dataset}")
    else:
        folds = dataset_folds(dataset, config.folds, config.seed)
    config.output.mkdir(parents=True, exist_ok=True)
    folds.save(path)
    return folds
