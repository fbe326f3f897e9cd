"""Case-level splits: k folds of cases (never slices), seeded, saved with the run as JSON.

The fold policy of both ``wssscam train`` and ``wssscam study`` is :func:`dataset_folds`: seeded and
stratified by whether a case holds abnormality, so every fold gets its share of positive cases.

A fixed split (a split file with ``train``, optional ``validation`` and ``test`` case lists, or a
training dataset plus a separate test dataset) is one fold whose training side is listed explicitly
(:func:`fixed_split`); with an empty ``test`` list it trains on everything and holds nothing out.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import write_text
from ..errors import InvalidInputError
from .datasets import Case, Dataset
from .readers import read_volume


@dataclass
class Folds:
    """``folds[i]`` are the held-out case ids of fold i; the others train. ``seed`` made the shuffle.

    ``train`` (optional, one list per fold): the training side of each fold listed explicitly (a fixed
    split: cases in neither list are not used by that fold); ``validation`` (optional, one list per
    fold): training-side cases given as the inner validation set (early stopping), instead of the one
    drawn from the training cases."""

    folds: list[list[str]]
    seed: int
    train: list[list[str]] | None = None
    validation: list[list[str]] | None = None

    @property
    def fixed(self) -> bool:
        """Whether the training sides are listed explicitly (a fixed split), not the complement of the held-out cases."""
        return self.train is not None

    def held_out(self, fold: int) -> list[str]:
        return list(self.folds[fold])

    def training(self, fold: int) -> list[str]:
        """Every training-side case of ``fold`` (inner validation cases included)."""
        if self.train is not None:
            return list(self.train[fold]) + [c for c in self.validation_of(fold) or [] if c not in self.train[fold]]
        return [c for i, f in enumerate(self.folds) if i != fold for c in f]

    def validation_of(self, fold: int) -> list[str] | None:
        """The inner validation cases given for ``fold`` (None: draw them from the training cases)."""
        if self.validation is None or not self.validation[fold]:
            return None
        return list(self.validation[fold])

    def cases(self) -> list[str]:
        """Every case any fold uses (held out or training), each once, in order of first appearance."""
        seen = dict.fromkeys(c for fold in range(len(self.folds)) for c in self.held_out(fold) + self.training(fold))
        return list(seen)

    def role(self, case_id: str, fold: int) -> str | None:
        """``"test"`` where ``fold`` holds the case out, ``"train"`` where it trains on it, None where the fold does not use it."""
        if case_id in self.folds[fold]:
            return "test"
        return "train" if case_id in self.training(fold) else None

    def same_cases(self, other: Folds) -> bool:
        """Whether ``other`` holds out and trains on the same cases in every fold (the seed aside)."""
        return (self.folds, self.train, self.validation) == (other.folds, other.train, other.validation)

    def save(self, path: str | Path) -> Path:
        data = asdict(self)
        for key in ("train", "validation"):
            if data[key] is None:
                del data[key]
        return write_text(path, json.dumps(data, indent=2))

    @staticmethod
    def load(path: str | Path) -> Folds:
        data = json.loads(Path(path).read_text())
        train, validation = data.get("train"), data.get("validation")
        return Folds(
            [list(f) for f in data["folds"]],
            int(data["seed"]),
            [list(f) for f in train] if train is not None else None,
            [list(f) for f in validation] if validation is not None else None,
        )


def fixed_split(train: Sequence[str], test: Sequence[str], validation: Sequence[str] = (), seed: int = 0) -> Folds:
    """One fold: ``test`` held out, ``train`` (+ ``validation`` as the inner validation set) training.
    Refuses a case listed twice (in one list or in two: it would leak) and an empty training side."""
    lists = {"train": list(train), "validation": list(validation), "test": list(test)}
    seen: dict[str, str] = {}
    for name, cases in lists.items():
        for case_id in cases:
            if case_id in seen:
                raise InvalidInputError(
                    f"case '{case_id}' is listed in '{seen[case_id]}' and in '{name}': a case in two roles would leak"
                )
            seen[case_id] = name
    if not lists["train"]:
        raise InvalidInputError("a fixed split needs at least one training case")
    return Folds([lists["test"]], seed, [lists["train"]], [lists["validation"]] if lists["validation"] else None)


def read_split_file(path: str | Path, seed: int = 0) -> Folds:
    """A split file (JSON: ``train``, optional ``validation``, ``test`` case lists) as one fixed fold."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise InvalidInputError(f"{path}: cannot read the split file ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(data, dict) or "train" not in data or "test" not in data:
        raise InvalidInputError(f"{path}: a split file is a JSON object with 'train' and 'test' case lists")
    unknown = set(data) - {"train", "validation", "test", "comment"}
    if unknown:
        raise InvalidInputError(f"{path}: unknown keys {sorted(unknown)}; known: comment, test, train, validation")
    for key in ("train", "validation", "test"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise InvalidInputError(f"{path}: '{key}' must be a list of case ids (strings)")
    try:
        return fixed_split(data["train"], data["test"], data.get("validation", []), seed)
    except InvalidInputError as error:
        raise InvalidInputError(f"{path}: {error}") from None


def case_folds(case_ids: Sequence[str], k: int = 5, seed: int = 0, labels: Sequence[int] | None = None) -> Folds:
    """Shuffle cases with ``seed`` and deal them into ``k`` folds of (nearly) equal size.

    With case ``labels``, each label's cases are dealt separately (stratified), so every fold gets
    its share of positive and negative cases. Raises ``ValueError`` for duplicate ids or k out of range.
    """
    ids = list(case_ids)
    if len(set(ids)) != len(ids):
        raise InvalidInputError("case ids must be unique: a case in two folds would leak")
    if not 2 <= k <= len(ids):
        raise InvalidInputError(f"k = {k} folds needs 2 <= k <= {len(ids)} cases")
    rng = random.Random(seed)
    groups: dict[int, list[str]] = {}
    for case_id, label in zip(ids, labels if labels is not None else [0] * len(ids)):
        groups.setdefault(int(label), []).append(case_id)
    folds: list[list[str]] = [[] for _ in range(k)]
    position = 0
    for label in sorted(groups):
        members = sorted(groups[label])
        rng.shuffle(members)
        for case_id in members:
            folds[position % k].append(case_id)
            position += 1
    return Folds(folds, seed)


def case_positive(case: Case) -> bool:
    """Whether a case holds abnormality: its mask has a voxel > 0 (as a slice label does), else its case label is not 0."""
    if case.mask is not None:
        return bool((read_volume(case.mask).array > 0).any())
    return case.label is not None and int(case.label) != 0


def dataset_folds(dataset: Dataset, k: int, seed: int) -> Folds:
    """The fold policy: :func:`case_folds` of the dataset's cases, stratified by :func:`case_positive`."""
    cases = dataset.cases
    return case_folds([c.case_id for c in cases], k, seed, labels=[int(case_positive(c)) for c in cases])


def load_folds(path: str | Path, seed: int = 0) -> Folds:
    """Folds from a file: a ``folds.json`` (``folds``, ``seed``; as ``wssscam train`` and studies save them)
    or a split file (``train``, optional ``validation``, ``test``; see :func:`read_split_file`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise InvalidInputError(f"{path}: cannot read the folds file ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}: invalid JSON ({error})") from None
    if isinstance(data, dict) and "folds" in data:
        try:
            return Folds.load(path)
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"{path}: not a folds file ({error!r})") from None
    return read_split_file(path, seed)
