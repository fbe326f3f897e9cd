"""The study context: one object that every stage receives, owning what the stages share.

It holds the configuration, the dataset (with external measures), the case folds, the slice recipe
and the output folder (paths: :mod:`WSSSCamLib.study.layout`), and it owns the fold models: each
model's checkpoint of each fold is located, its card read and checked, its file hashed and its
weights loaded at most once per process, whichever stages ask (cams, retrain, report).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..cams import CamEngine
from ..data.datasets import Dataset
from ..data.recipe import Recipe, dataset_slices, recipe_from_card
from ..data.slices import SliceSet
from ..data.splits import Folds
from ..errors import InvalidInputError, MissingFileError
from ..inference.volume_cams import cam_engine_for
from ..models.card import ModelCard
from ..training.checkpoint import card_path, file_sha256, load_checkpoint, read_card
from .config import ModelSpec, StudyConfig
from .inputs import read_dataset, recipe_of, study_folds
from .layout import checkpoint_path

Shard = tuple[int, int]
"""(i, n): this process does shard i of n (folds, or cases by position, with index % n == i)."""


def in_shard(index: int, shard: Shard) -> bool:
    """Whether the fold or case at ``index`` belongs to ``shard``."""
    return index % shard[1] == shard[0]


@dataclass
class FoldCheckpoint:
    """One model's checkpoint of one fold: its path, its checked card and (computed once) its SHA-256."""

    spec: ModelSpec
    fold: int
    path: Path
    card: ModelCard
    _sha256: str | None = field(default=None, repr=False)

    @property
    def sha256(self) -> str:
        """SHA-256 of the checkpoint file (hashed on first use)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256


@dataclass
class FoldModel:
    """A fold's network ready for maps: its name, the module in eval mode, its card, CAM engine and methods."""

    name: str
    model: nn.Module
    card: ModelCard
    engine: CamEngine
    methods: list[str]


@dataclass
class StudyContext:
    """What the stages of one study run share (see the module docstring)."""

    config: StudyConfig
    dataset: Dataset
    folds: Folds
    recipe: Recipe
    started: float = field(default_factory=time.perf_counter)
    """When the run began (``time.perf_counter()``)."""
    selected_folds: list[int] | None = None
    """The folds the stages work on (``--folds``); None: every fold."""
    _checkpoints: dict[tuple[str, int], FoldCheckpoint] = field(default_factory=dict, repr=False)
    _models: dict[tuple[str, int], FoldModel] = field(default_factory=dict, repr=False)
    _slices: SliceSet | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config: StudyConfig, folds: list[int] | None = None) -> StudyContext:
        """Read the dataset, build the recipe and load (or make and save) the folds of ``config``;
        ``folds``: the stages work on these folds only (default: all)."""
        dataset = read_dataset(config)
        context = cls(config, dataset, study_folds(config, dataset), recipe_of(config, dataset))
        if folds is not None:
            bad = sorted(set(folds) - set(range(context.fold_count)))
            if bad or not folds:
                raise InvalidInputError(
                    f"--folds {','.join(map(str, folds))}: the study has folds 0..{context.fold_count - 1}"
                )
            context.selected_folds = sorted(set(folds))
        return context

    @property
    def output(self) -> Path:
        """The study's output folder."""
        return self.config.output

    @property
    def fold_count(self) -> int:
        """The number of folds."""
        return len(self.folds.folds)

    @property
    def fold_indices(self) -> list[int]:
        """The folds the stages work on: the selected ones (``--folds``), else every fold."""
        return list(self.selected_folds) if self.selected_folds is not None else list(range(self.fold_count))

    def role(self, case_id: str, fold: int) -> str | None:
        """``"test"`` when ``fold`` holds ``case_id`` out, ``"train"`` when the case trains it, else None (unused)."""
        return self.folds.role(case_id, fold)

    def model_spec(self, name: str) -> ModelSpec:
        """The configured model called ``name``."""
        return next(m for m in self.config.models if m.name == name)

    def slices(self, progress: bool, cases: list[str] | None = None) -> SliceSet:
        """The cases (default: every case) read, normalised and sliced by the recipe; a case is read
        once per process, and only when asked for."""
        wanted = [c.case_id for c in self.dataset.cases] if cases is None else list(cases)
        have = set(self._slices.case_ids) if self._slices is not None else set()
        if not set(wanted) <= have:
            self._slices = dataset_slices(self.dataset.subset(have | set(wanted)), self.recipe, progress)
        return self._slices if cases is None else self._slices.of_cases(wanted)

    def checkpoint(self, spec: ModelSpec, fold: int) -> FoldCheckpoint:
        """``spec``'s checkpoint of ``fold`` with its card (weights not read). Refuses a missing one, one whose
        card says it was tested on other cases than the fold's (leakage) or trained on slices made another way."""
        key = (spec.name, fold)
        if key not in self._checkpoints:
            path = checkpoint_path(self.output, spec, fold)
            if not path.exists():
                raise MissingFileError(
                    f"{path}: no checkpoint of model '{spec.name}' for fold {fold}; run the 'train' stage first"
                )
            card = read_card(card_path(path))
            held_out = card.split.get("test") if card.split else None
            if held_out is not None and sorted(held_out) != sorted(self.folds.held_out(fold)):
                raise InvalidInputError(
                    f"{path}: this checkpoint held out other cases than fold {fold} of the study; its training cases "
                    "would leak into the evaluation (use the folds it was trained with: folds_file)"
                )
            if card.recipe and recipe_from_card(card) != self.recipe:
                raise InvalidInputError(
                    f"{path}: trained on slices made another way ({recipe_from_card(card)}) "
                    f"than the study's recipe ({self.recipe})"
                )
            self._checkpoints[key] = FoldCheckpoint(spec, fold, path, card)
        return self._checkpoints[key]

    def fold_model(self, spec: ModelSpec, fold: int, device: torch.device) -> FoldModel:
        """``spec``'s network of ``fold`` on ``device`` (loaded once; its checkpoint checked by :meth:`checkpoint`)."""
        key = (spec.name, fold)
        if key not in self._models:
            checkpoint = self.checkpoint(spec, fold)
            model, card = load_checkpoint(checkpoint.path, card=checkpoint.card, device=device)
            self._models[key] = FoldModel(
                spec.name, model.eval(), card, cam_engine_for(model, card), self.config.methods_of(spec)
            )
        return self._models[key]

    def fold_models(self, fold: int, device: torch.device) -> list[FoldModel]:
        """Every configured model's network of ``fold``, in configuration order."""
        return [self.fold_model(spec, fold, device) for spec in self.config.models]
