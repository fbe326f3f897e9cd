"""What a study reads before any stage: its dataset (with external measures), slice recipe and folds."""

from __future__ import annotations

import pandas as pd

from ..data.datasets import Dataset, read_csv_dataset, read_decathlon
from ..data.recipe import Recipe, SliceRecipe
from ..data.splits import Folds, dataset_folds, fixed_split, load_folds, read_split_file
from ..data.volume_recipe import VolumeRecipe
from ..errors import InvalidInputError, MissingFileError
from .config import StudyConfig
from .layout import folds_file


def read_dataset(config: StudyConfig) -> Dataset:
    """The study's dataset, with external measures merged from ``config.measures`` (CSV: case, measures...);
    with ``test_dataset`` its cases join the training dataset's (same channels and classes, case ids distinct).
    Only the dataset descriptions are read here, no image."""
    if config.csv:
        dataset = read_csv_dataset(config.dataset, config.csv)
    else:
        dataset = read_decathlon(config.dataset, allow_outside=config.allow_outside_dataset)
    if config.test_dataset is not None:
        test = read_decathlon(config.test_dataset, allow_outside=config.allow_outside_dataset)
        if list(test.channel_names) != list(dataset.channel_names) or list(test.class_names) != list(
            dataset.class_names
        ):
            raise InvalidInputError(
                f"{config.test_dataset}: channels {test.channel_names} / classes {test.class_names} differ from "
                f"{config.dataset}'s ({dataset.channel_names} / {dataset.class_names})"
            )
        shared = sorted({c.case_id for c in dataset.cases} & {c.case_id for c in test.cases})
        if shared:
            raise InvalidInputError(
                f"{config.test_dataset}: case ids also in {config.dataset} ({shared[:5]}): a case must be training or test"
            )
        dataset = Dataset(dataset.root, dataset.cases + test.cases, dataset.channel_names, dataset.class_names)
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


def recipe_of(config: StudyConfig, dataset: Dataset) -> Recipe:
    """The study's :class:`SliceRecipe` from ``config.recipe`` (a context channel named by the dataset's channel
    name), or its :class:`VolumeRecipe` for ``kind: volume``."""
    values = dict(config.recipe)
    if values.get("kind") == "volume":
        return VolumeRecipe.from_values(values)
    if values.get("context_channel") is not None:
        try:
            values["context_channel"] = dataset.channel_index(values["context_channel"])
        except KeyError as error:
            raise InvalidInputError(f"{config.source}: recipe.context_channel: {error.args[0]}") from None
    if "clip_percentiles" in values:
        values["clip_percentiles"] = tuple(values["clip_percentiles"])
    return SliceRecipe(**values)


def configured_folds(config: StudyConfig, dataset: Dataset) -> Folds:
    """The folds the configuration asks for: its ``split_file`` or ``test_dataset`` (one fixed fold), its
    ``folds_file``, else the one fold policy (:func:`~WSSSCamLib.data.splits.dataset_folds`, which reads the masks)."""
    if config.split_file is not None:
        return read_split_file(config.split_file, config.seed)
    if config.test_dataset is not None:
        test = {c.case_id for c in read_decathlon(config.test_dataset, config.allow_outside_dataset).cases}
        return fixed_split(
            [c.case_id for c in dataset.cases if c.case_id not in test],
            [c.case_id for c in dataset.cases if c.case_id in test],
            seed=config.seed,
        )
    if config.folds_file is not None:
        if not config.folds_file.exists():
            raise MissingFileError(f"{config.folds_file}: folds_file of {config.source} does not exist")
        return load_folds(config.folds_file, config.seed)
    return dataset_folds(dataset, config.folds, config.seed)


def _check_cases(folds: Folds, dataset: Dataset, where: str, config: StudyConfig) -> None:
    """Refuse folds naming cases the dataset lacks, and k folds that leave some of its cases out."""
    case_ids = {c.case_id for c in dataset.cases}
    used = set(folds.cases())
    if used - case_ids:
        raise InvalidInputError(f"{where}: names cases that {config.dataset} lacks: {sorted(used - case_ids)[:5]}")
    if not folds.fixed and used != case_ids:
        raise InvalidInputError(f"{where}: its folds hold other cases than {config.dataset}")


def study_folds(config: StudyConfig, dataset: Dataset) -> Folds:
    """The study's case folds: loaded from ``output/folds.json`` when present (checked: the same cases, and
    the configured split or folds file, if any, unchanged), else :func:`configured_folds`; saved as ``output/folds.json``."""
    path = folds_file(config.output)
    if path.exists():
        folds = Folds.load(path)
        try:
            _check_cases(folds, dataset, str(path), config)
        except InvalidInputError as error:
            raise InvalidInputError(f"{error}; use a new output folder") from None
        if any(v is not None for v in (config.split_file, config.test_dataset, config.folds_file)):
            if not configured_folds(config, dataset).same_cases(folds):
                raise InvalidInputError(
                    f"{path}: the study's outputs were made with other folds than {config.source} names now; "
                    "use a new output folder"
                )
        return folds
    folds = configured_folds(config, dataset)
    _check_cases(folds, dataset, str(config.split_file or config.folds_file or config.output), config)
    config.output.mkdir(parents=True, exist_ok=True)
    folds.save(path)
    return folds
