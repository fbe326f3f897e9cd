"""Case-level splits: k folds of cases (never slices), seeded, saved with the run as JSON.

The fold policy of both ``wssscam train`` and ``wssscam study`` is :func:`dataset_folds`: seeded and
stratified by whether a case holds abnormality, so every fold gets its share of positive cases.
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
    """``folds[i]`` are the held-out case ids of fold i; the others train. ``seed`` made the shuffle."""

    folds: list[list[str]]
    seed: int

    def held_out(self, fold: int) -> list[str]:
        return list(self.folds[fold])

    def training(self, fold: int) -> list[str]:
        return [c for i, f in enumerate(self.folds) if i != fold for c in f]

    def save(self, path: str | Path) -> Path:
        return write_text(path, json.dumps(asdict(self), indent=2))

    @staticmethod
    def load(path: str | Path) -> Folds:
        data = json.loads(Path(path).read_text())
        return Folds([list(f) for f in data["folds"]], int(data["seed"]))


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
