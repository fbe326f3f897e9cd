"""The study configuration: what a ``wssscam study CONFIG`` run computes, read from YAML or JSON.

Example (YAML)::

    dataset: ../shared/data/lgg-flair-dev       # Decathlon/nnU-Net folder, or a folder of volumes with `csv`
    measures: null                               # optional CSV: case, <external per-case measures>
    output: runs/lgg-study
    folds: 5
    folds_file: null                             # optional folds.json to reuse (e.g. of `wssscam train` runs)
    split_file: null                             # optional fixed split: JSON {train: [...], validation: [...], test: [...]}
    test_dataset: null                           # optional fixed test set: a second Decathlon folder (train on all of `dataset`)
    seed: 0
    device: auto
    recipe: {size: 96, axis: K, context_channel: FLAIR}   # or 3D: {kind: volume, size: [8, 96, 96], slab: 8, axis: K}
    models:
      - {name: small-cnn, architecture: small-cnn, train: {epochs: 20, patience: 0}}
      - {name: resnet18, architecture: resnet18, train: {epochs: 12, patience: 0}}
      - {name: mine, architecture: resnet34, checkpoints: "ckpt/fold{fold}/model.pt"}   # trained elsewhere
    methods: [grad-cam, grad-cam++, hires-cam, xgrad-cam, layer-cam, score-cam]
    thresholds: [grid, p95, mean, median, otsu]  # grid = t in 0.1..0.9
    empty_when_negative: false                   # single configurations: empty the mask where the classifier says negative
    ensembles:                                   # members are model/method; thresholds grid-searched on training cases
      - {rule: and, members: [small-cnn/grad-cam, resnet18/grad-cam]}
    refinements:                                 # optional: refined CAMs (see study/refined.py), chosen on training cases
      - {members: [small-cnn/grad-cam], thresholds: [p95, otsu], steps: [gate, "gate | felzenszwalb:scale=100"]}
    overlays: 4                                  # example overlay figures
    filtered_retraining: {model: small-cnn, method: grad-cam, variants: [cam, mask], epochs: 10}   # Guan & Loew 2021
    faithfulness: {steps: 20, baseline: minimum, slices: abnormal, per_case: 8, seed: 0, methods: null}   # off when absent
    segmentation: {size: 128, epochs: 20, batch_size: 16, lr: 0.001, source: best, ignore_band: 0.0,   # off when absent
                   filter: {min_probability: 0.0, min_area: 0.0, max_area: 1.0}, self_training: false,
                   supervised: true, augment: true, seed: 0, dims: 2, depth: 16}

``segmentation`` (the ``segment`` stage, :mod:`WSSSCamLib.study.stages.segment`; slice recipes only): per fold a
MONAI 2D U-Net trained on pseudo-labels of the fold's training cases (:mod:`WSSSCamLib.study.pseudo_labels`),
optionally one round of self-training, and with ``supervised`` the same network trained on the reference masks of
the same cases (the fully supervised upper bound). ``size``: the U-Net's input side in pixels; ``lr``: Adam's
learning rate; ``source``: the configuration whose masks are the pseudo-labels, chosen on each fold's training
cases: ``best`` (the report's best CAM), ``best-refined`` (its best refined CAM), ``<model>/<method>`` (threshold
rule chosen on the training cases), ``<model>/<method>@<rule>`` (a named rule: ``p95``, ``otsu``, ``t=0.40``),
an ensemble by its name (``and(a/grad-cam, b/grad-cam)``, member thresholds from the training-case grid search)
or a refined configuration ``<model>/<method> + <steps>`` (optionally ``@<rule>``); a list of such sources: per
fold, the candidate whose pseudo-labels agree best with the fold's training cases' masks (the highest lesion-slice
Dice on the slices kept for training, see :func:`~WSSSCamLib.study.pseudo_labels.pick_labels`); ``ignore_band``: pixels
whose map value lies within +-band of the cut are ignored in the loss (label 255); ``filter``: positive slices
whose classifier probability is below ``min_probability`` or whose pseudo-mask covers a fraction of the slice
outside [``min_area``, ``max_area``] are dropped; ``augment``: random flips; ``dims``: 2 (a 2D U-Net on slices) or
3 (a 3D U-Net on each case's stack of the recipe's slices, trained on windows of ``depth`` consecutive slices, a
multiple of 8; a dropped slice's labels are ignored instead).

``faithfulness`` (held-out cases only; :mod:`WSSSCamLib.study.faithfulness_rows`): deletion/insertion AUC
(Petsiuk et al. 2018) with ``steps`` steps, removed pixels set to ``baseline`` (minimum | zero | blur),
average drop / increase in confidence (Chattopadhay et al. 2018, explanation x * L), and against the reference the pointing
game (hit within ``tolerance`` pixels) and the energy share inside ``energy_region`` (box | mask), on up to
``per_case`` slices per case (null: all) drawn with ``seed`` among the ``slices``: ``abnormal`` (reference
not empty), ``positive`` (the model's probability > 0.5) or ``all``; ``methods``: a subset (null: every
method of each model).

A fixed split (``split_file``, or ``test_dataset``) is one fold: models train on its training cases
(inner validation: the split's ``validation`` list, else drawn from the training cases when
``patience`` > 0), every threshold and ensemble choice is made on its training cases, and the test
cases are only evaluated; ``folds`` is then unused. At most one of ``folds_file``, ``split_file`` and
``test_dataset`` may be given.

Relative paths are resolved against the configuration file's folder. Every error names the file
and the key. Every value is type-checked at load time against one schema (``TOP_LEVEL``, ``RECIPE``,
``TRAIN``, ``MODEL``, ``ENSEMBLE`` below; ``recipe`` and ``train`` follow the fields of
:class:`~WSSSCamLib.data.recipe.SliceRecipe` and :class:`~WSSSCamLib.training.trainer.TrainConfig`,
so an option added there joins the schema). ``allow_outside_dataset: true`` lets ``dataset.json``
refer to image and label files outside the dataset folder (refused otherwise).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..cams import METHODS, resolve_methods
from ..data.recipe import SliceRecipe
from ..data.volume_recipe import VolumeRecipe
from ..devices import DeviceError, check_device
from ..masks import RULES, THRESHOLD_GRID, Threshold
from ..models.zoo import ARCHITECTURES, SEGMENTATION_ARCHITECTURES
from ..refine import Pipeline, RefinementError
from ..schema import (
    ConfigError,
    Field,
    boolean,
    check_section,
    dataclass_schema,
    either,
    integer,
    list_of,
    number,
    optional,
    section,
    string,
)
from ..training.trainer import TrainConfig


@dataclass
class ModelSpec:
    """A model of the study: trained per fold with ``train`` options, or loaded from ``checkpoints``
    (a path pattern with ``{fold}``; the model card JSON lies beside each checkpoint)."""

    name: str
    architecture: str
    train: dict[str, Any] = field(default_factory=dict)
    checkpoints: str | None = None
    methods: list[str] | None = None  # this model's methods (default: the study's)


@dataclass
class EnsembleSpec:
    """An ensemble of the study: its rule and members (model name, method); named ``rule(model/method, ...)``."""

    rule: str
    members: list[tuple[str, str]]  # (model name, method)

    @property
    def name(self) -> str:
        return f"{self.rule}({', '.join(f'{m}/{k}' for m, k in self.members)})"


@dataclass
class RefinementSpec:
    """Refined CAMs of the study: each member map (model name, method) thresholded by each rule, then
    refined by each pipeline of steps (:mod:`WSSSCamLib.refine`); see :mod:`WSSSCamLib.study.refined`."""

    members: list[tuple[str, str]]  # (model name, method)
    thresholds: list[Threshold]
    steps: list[Pipeline]


VARIANTS: tuple[str, ...] = ("cam", "cam-mask", "mask", "inverse-mask", "original")
"""The filtered-retraining variants (what each filter is: :mod:`WSSSCamLib.study.retraining`)."""


@dataclass
class FilteredRetrainingSpec:
    """Guan & Loew 2021's check: retrain ``model``'s architecture on CAM-filtered and on mask-filtered images
    (variants: see :mod:`WSSSCamLib.study.retraining`; ``threshold`` is used by ``cam-mask`` only)."""

    model: str
    method: str = "grad-cam"
    variants: list[str] = field(default_factory=lambda: ["cam", "mask"])
    threshold: str = "t=0.50"
    epochs: int = 10


SLICE_POOLS: tuple[str, ...] = ("abnormal", "positive", "all")
"""Which slices of a held-out case the faithfulness metrics may sample (see :class:`FaithfulnessSpec`)."""


@dataclass
class FaithfulnessSpec:
    """CAM faithfulness and pointing metrics of the held-out cases (the ``faithfulness`` key; see the module
    docstring and :mod:`WSSSCamLib.study.faithfulness_rows`). ``tolerance`` in pixels of the native slice."""

    steps: int = 20
    baseline: str = "minimum"
    slices: str = "abnormal"
    per_case: int | None = 8
    seed: int = 0
    methods: list[str] | None = None
    tolerance: float = 0.0
    energy_region: str = "box"


@dataclass
class SegmentationFilterSpec:
    """Which pseudo-masks of positive slices are dropped: classifier probability < ``min_probability``, or a
    foreground fraction of the slice's pixels outside [``min_area``, ``max_area``] (both in [0, 1])."""

    min_probability: float = 0.0
    min_area: float = 0.0
    max_area: float = 1.0


SOURCE_BEST: tuple[str, ...] = ("best", "best-refined")
"""``segmentation.source`` values that name the report's best CAM / best refined CAM of each fold."""


@dataclass
class SegmentationSpec:
    """The ``segmentation`` key (see the module docstring): U-Net input ``size`` (pixels), ``epochs``,
    ``batch_size``, Adam ``lr``, pseudo-label ``source``, ``ignore_band`` (map units, [0, 0.5)), ``filter``,
    ``self_training``, ``supervised``, ``augment`` (random flips), ``seed``, ``dims`` (2: a 2D U-Net on slices;
    3: a 3D U-Net on each case's stack of slices) and ``depth`` (3D: slices per training window)."""

    size: int = 128
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    source: str | list[str] = "best"
    ignore_band: float = 0.0
    filter: SegmentationFilterSpec = field(default_factory=SegmentationFilterSpec)
    self_training: bool = False
    supervised: bool = True
    augment: bool = True
    seed: int = 0
    dims: int = 2
    depth: int = 16

    def sources(self) -> list[str]:
        """``source`` as a list: the candidate sources, in the configuration's order."""
        return [self.source] if isinstance(self.source, str) else list(self.source)


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``segmentation.source``: ``kind`` best | best-refined | threshold | ensemble | refined;
    ``member`` (model, method) of a threshold or refined source; ``ensemble`` its name; ``steps`` the refined
    pipeline's canonical name; ``rule`` the named threshold (one per ensemble member, joined by ``|``), or None:
    chosen on each fold's training cases."""

    kind: str
    member: tuple[str, str] | None = None
    ensemble: str | None = None
    steps: str | None = None
    rule: str | None = None


@dataclass
class StudyConfig:
    """A validated study configuration (see the module docstring for every key); built by :func:`parse_config`."""

    dataset: Path
    output: Path
    models: list[ModelSpec]
    methods: list[str]
    csv: Path | None = None
    measures: Path | None = None
    folds: int = 5
    folds_file: Path | None = None
    split_file: Path | None = None
    test_dataset: Path | None = None
    seed: int = 0
    device: str = "auto"
    recipe: dict[str, Any] = field(default_factory=dict)
    thresholds: list[Threshold] = field(default_factory=list)
    empty_when_negative: bool = False
    ensembles: list[EnsembleSpec] = field(default_factory=list)
    overlays: int = 4
    batch_size: int = 32
    filtered_retraining: FilteredRetrainingSpec | None = None
    allow_outside_dataset: bool = False
    refinements: list[RefinementSpec] = field(default_factory=list)
    source: str = ""
    faithfulness: FaithfulnessSpec | None = None
    segmentation: SegmentationSpec | None = None

    def methods_of(self, model: ModelSpec) -> list[str]:
        return model.methods or self.methods

    def fixed_thresholds(self) -> list[float]:
        return [t.value for t in self.thresholds if t.mode == "fixed"]

    def other_thresholds(self) -> list[Threshold]:
        return [t for t in self.thresholds if t.mode != "fixed"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings, thresholds by name) for provenance."""
        data = asdict(self)
        data["thresholds"] = [t.name for t in self.thresholds]
        for key in ("dataset", "output", "csv", "measures", "folds_file", "split_file", "test_dataset"):
            data[key] = str(data[key]) if data[key] is not None else None
        data["ensembles"] = [{"rule": e.rule, "members": [f"{m}/{k}" for m, k in e.members]} for e in self.ensembles]
        data["refinements"] = [
            {
                "members": [f"{m}/{k}" for m, k in r.members],
                "thresholds": [t.name for t in r.thresholds],
                "steps": [p.describe() for p in r.steps],
            }
            for r in self.refinements
        ]
        return data


def device_string(value: Any, key: str) -> str:
    """A device spelled ``auto | cpu | cuda | cuda:N | mps`` (whether it exists is checked when the run starts)."""
    try:
        return check_device(value, key)
    except DeviceError as error:
        raise ConfigError(str(error)) from None


def _percentile_pair(value: Any, key: str) -> tuple[float, float]:
    """Two percentiles ``[low, high]`` with 0 <= low < high <= 100."""
    pair = list_of(number(0, 100))(value, key)
    if len(pair) != 2 or not pair[0] < pair[1]:
        raise ConfigError(f"{key}: expected two percentiles [low, high] with 0 <= low < high <= 100, got {value!r}")
    return value[0], value[1]  # as written, so the configuration's fingerprint does not change


RECIPE: dict[str, Field] = dataclass_schema(
    SliceRecipe,
    {
        "size": integer(minimum=1),
        "axis": string(["K", "J", "I"]),
        "clip_percentiles": _percentile_pair,
        "context_channel": optional(either(integer(minimum=0), string(), expected="a channel name or index")),
    },
)
"""``recipe``: how volumes become classifier input (the fields of SliceRecipe)."""


def _grid(value: Any, key: str) -> list[int]:
    """A 3D grid ``[D, H, W]`` of positive integers."""
    grid = list_of(integer(minimum=1))(value, key)
    if len(grid) != 3:
        raise ConfigError(f"{key}: expected three sizes [D, H, W] in voxels, got {value!r}")
    return grid


VOLUME_RECIPE: dict[str, Field] = dataclass_schema(
    VolumeRecipe,
    {
        "kind": string(["volume"]),
        "size": _grid,
        "axis": string(["K", "J", "I"]),
        "slab": optional(integer(minimum=1)),
        "stride": optional(integer(minimum=1)),
        "clip_percentiles": _percentile_pair,
    },
)
"""``recipe`` with ``kind: volume``: 3D slabs or whole volumes on a fixed grid (the fields of VolumeRecipe)."""


def _recipe(value: Any, key: str) -> dict[str, Any]:
    """A slice recipe (``RECIPE``), or with ``kind: volume`` a volume recipe (``VOLUME_RECIPE``)."""
    if isinstance(value, dict) and "kind" in value:
        values = check_section(value, VOLUME_RECIPE, key)
        if values.get("stride") is not None and values.get("slab") is None:
            raise ConfigError(f"{key}.stride: needs a slab (slices per slab)")
        return values
    return check_section(value, RECIPE, key)


TRAIN: dict[str, Field] = dataclass_schema(
    TrainConfig,
    {
        "epochs": integer(minimum=1),
        "batch_size": integer(minimum=1),
        "learning_rate": number(positive=True),
        "weight_decay": number(minimum=0),
        "balance": string(["loss", "sampler", "none"]),
        "patience": integer(minimum=0),
        "seed": integer(minimum=0),
        "device": device_string,
    },
)
"""``models[i].train``: training options (the fields of TrainConfig)."""


def _method_names(value: Any, key: str) -> list[str]:
    """A non-empty list of CAM method names, canonicalised."""
    names = list_of(string(), min_length=1)(value, key)
    try:
        return [m.name for m in resolve_methods(names)]
    except (KeyError, ValueError) as error:
        raise ConfigError(f"{key}: {error.args[0] if error.args else error}") from None


def _anything(value: Any, key: str) -> Any:
    """Accepted as is here; checked where its meaning is known (models, ensembles, filtered_retraining)."""
    return value


MODEL: dict[str, Field] = {
    "name": Field(string(), required=True),
    "architecture": Field(string(), required=True),
    "train": Field(section(TRAIN), {}),
    "checkpoints": Field(optional(string())),
    "methods": Field(optional(_method_names)),
}
"""``models[i]``: a model of the study."""

ENSEMBLE: dict[str, Field] = {"rule": Field(_anything, required=True), "members": Field(list_of(string()), [])}
"""``ensembles[i]``: a rule over member maps (model/method), checked against the listed models."""

THRESHOLD_NAME = either(string(), number(), expected="a threshold name (t=0.5, p95, mean, median, otsu, grid)")
"""One item of a ``thresholds`` list (checked as a name here, parsed by :func:`_parse_thresholds`)."""


def _pipeline(value: Any, key: str) -> Pipeline:
    """A refinement pipeline: its name (steps joined by ``|``, or ``none``) or a list of step names."""
    text = either(string(), list_of(string(), min_length=1), expected="a pipeline name or a list of step names")(
        value, key
    )
    try:
        return Pipeline.parse(text)
    except RefinementError as error:
        raise ConfigError(f"{key}: {error}") from None


REFINEMENT: dict[str, Field] = {
    "members": Field(list_of(string(), min_length=1), required=True),
    "thresholds": Field(list_of(THRESHOLD_NAME, min_length=1), required=True),
    "steps": Field(list_of(_pipeline, min_length=1), required=True),
}
"""``refinements[i]``: member maps (model/method of listed models) x threshold rules x refinement pipelines."""
FAITHFULNESS: dict[str, Field] = dataclass_schema(
    FaithfulnessSpec,
    {
        "steps": integer(minimum=1),
        "baseline": string(["minimum", "zero", "blur"]),
        "slices": string(list(SLICE_POOLS)),
        "per_case": optional(integer(minimum=1)),
        "seed": integer(minimum=0),
        "methods": optional(_method_names),
        "tolerance": number(minimum=0),
        "energy_region": string(["box", "mask"]),
    },
)
"""``faithfulness``: the settings of the faithfulness and pointing metrics (the fields of FaithfulnessSpec)."""

SEGMENTATION_FILTER: dict[str, Field] = dataclass_schema(
    SegmentationFilterSpec,
    {"min_probability": number(0, 1), "min_area": number(0, 1), "max_area": number(0, 1)},
)
"""``segmentation.filter``: which pseudo-masks of positive slices are dropped (the fields of SegmentationFilterSpec)."""

UNET_SIZE_MULTIPLE = 8
"""``segmentation.size`` must be a multiple of this: the zoo's ``monai-unet`` has strides (2, 2, 2)."""

SEGMENTATION: dict[str, Field] = dataclass_schema(
    SegmentationSpec,
    {
        "size": integer(minimum=8),
        "epochs": integer(minimum=1),
        "batch_size": integer(minimum=1),
        "lr": number(positive=True),
        "source": lambda value, key: (list_of(string(), min_length=1) if isinstance(value, list) else string())(
            value, key
        ),
        "ignore_band": number(0, 0.499),
        "filter": section(SEGMENTATION_FILTER),
        "self_training": boolean(),
        "supervised": boolean(),
        "augment": boolean(),
        "seed": integer(minimum=0),
        "dims": integer(minimum=2, maximum=3),
        "depth": integer(minimum=UNET_SIZE_MULTIPLE),
    },
)
"""``segmentation``: the segment stage's settings (the fields of SegmentationSpec)."""

TOP_LEVEL: dict[str, Field] = {
    "dataset": Field(string(), required=True),
    "csv": Field(optional(string())),
    "measures": Field(optional(string())),
    "output": Field(string(), required=True),
    "folds": Field(integer(), 5),
    "folds_file": Field(optional(string())),
    "split_file": Field(optional(string())),
    "test_dataset": Field(optional(string())),
    "seed": Field(integer(minimum=0), 0),
    "device": Field(device_string, "auto"),
    "recipe": Field(_recipe, {}),
    "models": Field(list_of(_anything, min_length=1), required=True),
    "methods": Field(_method_names, required=True),
    "thresholds": Field(list_of(THRESHOLD_NAME), ["grid", "p95", "mean", "median", "otsu"]),
    "empty_when_negative": Field(boolean(), False),
    "ensembles": Field(optional(list_of(_anything)), []),
    "overlays": Field(integer(minimum=0), 4),
    "batch_size": Field(integer(minimum=1), 32),
    "filtered_retraining": Field(_anything),
    "allow_outside_dataset": Field(boolean(), False),
    "refinements": Field(optional(list_of(_anything)), []),
    "faithfulness": Field(optional(section(FAITHFULNESS))),
    "segmentation": Field(optional(section(SEGMENTATION))),
}
"""The top level of a study configuration; a new key joins here (and as a field of StudyConfig)."""


def _parse_thresholds(items: list, where: str) -> list[Threshold]:
    thresholds: list[Threshold] = []
    for item in items:
        if str(item) == "grid":
            thresholds += [Threshold("fixed", t) for t in THRESHOLD_GRID]
            continue
        try:
            thresholds.append(Threshold.parse(str(item)))
        except ValueError as error:
            raise ConfigError(f"{where}: thresholds: {error}") from None
    unique = {t.name: t for t in thresholds}
    return list(unique.values())


def _check_method_pairs(model: ModelSpec, methods: list[str], where: str) -> None:
    """Refuse methods the model's kind of network cannot give: Seg- methods on a classifier, classifier methods on a U-Net."""
    segmentation = model.architecture in SEGMENTATION_ARCHITECTURES
    for name in methods:
        method = METHODS[name]
        if method.segmentation and not segmentation:
            raise ConfigError(
                f"{where}: method '{name}' explains segmentation networks; model '{model.name}' "
                f"({model.architecture}) is a classifier"
            )
        if segmentation:
            raise ConfigError(
                f"{where}: model '{model.name}' ({model.architecture}) is a segmentation network; a study maps "
                "slice classifiers (use the Seg- methods through the API or the Slicer module)"
            )


def _parse_models(items: list, where: str, base: Path) -> list[ModelSpec]:
    models = []
    for index, item in enumerate(items):
        key = f"{where}: models[{index}]"
        if not isinstance(item, dict) or "name" not in item or "architecture" not in item:
            raise ConfigError(f"{key} needs at least 'name' and 'architecture'")
        if item["architecture"] not in ARCHITECTURES:
            raise ConfigError(f"{key}: unknown architecture '{item['architecture']}'; known: {sorted(ARCHITECTURES)}")
        values = check_section(item, MODEL, key)
        checkpoints = values.get("checkpoints")
        if checkpoints is not None:
            checkpoints = str(base / checkpoints) if not Path(checkpoints).is_absolute() else checkpoints
            if "{fold}" not in checkpoints:
                raise ConfigError(f"{key}.checkpoints must contain '{{fold}}' (one checkpoint per fold)")
            try:
                checkpoints.format(fold=0)
            except (KeyError, IndexError, ValueError) as error:
                raise ConfigError(
                    f"{key}.checkpoints: '{checkpoints}' may hold no placeholder but {{fold}} ({error!r})"
                ) from None
        models.append(
            ModelSpec(
                values["name"],
                values["architecture"],
                dict(values.get("train") or {}),
                checkpoints,
                values.get("methods"),
            )
        )
    names = [m.name for m in models]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{where}: models: model names must be unique; repeated: {repeated}")
    return models


def _parse_member(member: str, models: dict[str, ModelSpec], methods: list[str], where: str) -> tuple[str, str]:
    """A member map ``<model>/<method>`` of a listed model that computes that method, as (model name, method)."""
    model_name, _, method = member.partition("/")
    if model_name not in models or not method:
        raise ConfigError(f"{where}: member '{member}' is not <model>/<method> of a listed model")
    try:
        method = resolve_methods(method)[0].name
    except (KeyError, ValueError) as error:
        raise ConfigError(f"{where}: member '{member}': {error}") from None
    if method not in (models[model_name].methods or methods):
        raise ConfigError(f"{where}: member '{member}': {model_name} does not compute {method}")
    return model_name, method


def _parse_refinements(
    items: list, models: dict[str, ModelSpec], methods: list[str], source: str
) -> list[RefinementSpec]:
    """``refinements``: each entry checked against :data:`REFINEMENT`; a (member, threshold, pipeline) listed
    twice is refused (it would be counted twice)."""
    refinements, seen = [], set()
    for index, item in enumerate(items):
        where = f"{source}: refinements[{index}]"
        values = check_section(item, REFINEMENT, where)
        members = [_parse_member(m, models, methods, f"{where}.members[{i}]") for i, m in enumerate(values["members"])]
        thresholds = _parse_thresholds(values["thresholds"], where)
        for member in members:
            for threshold in thresholds:
                for pipeline in values["steps"]:
                    key = (member, threshold.name, pipeline.describe())
                    if key in seen:
                        raise ConfigError(
                            f"{where}: {member[0]}/{member[1]} at {threshold.name} with steps '{key[2]}' is listed twice"
                        )
                    seen.add(key)
        refinements.append(RefinementSpec(members, thresholds, values["steps"]))
    return refinements


def _parse_ensembles(items: list, models: dict[str, ModelSpec], methods: list[str], source: str) -> list[EnsembleSpec]:
    ensembles = []
    for index, item in enumerate(items):
        rule = item.get("rule") if isinstance(item, dict) else None
        if rule not in RULES:
            raise ConfigError(f"{source}: ensembles[{index}].rule must be one of {list(RULES)}, got {rule!r}")
        values = check_section(item, ENSEMBLE, f"{source}: ensembles[{index}]")
        members = [
            _parse_member(m, models, methods, f"{source}: ensembles[{index}]") for m in values.get("members") or []
        ]
        if len(members) < 2:
            raise ConfigError(f"{source}: ensembles[{index}] needs at least two members")
        ensembles.append(EnsembleSpec(rule, members))
    return ensembles


def parse_config(data: dict[str, Any], source: str = "<config>", base: Path | None = None) -> StudyConfig:
    """Validate a configuration dictionary against the schema (``TOP_LEVEL`` and its sections); paths relative to ``base``."""
    base = base or Path.cwd()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    unknown = set(data) - set(TOP_LEVEL)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown)}; known: {sorted(TOP_LEVEL)}")
    for key in ("dataset", "output", "models", "methods"):
        if key not in data:
            raise ConfigError(f"{source}: missing required key '{key}'")
    values = {
        key: spec.check(data[key], f"{source}: {key}") if key in data else spec.default
        for key, spec in TOP_LEVEL.items()
    }

    def path(key: str) -> Path | None:
        value = values[key]
        return None if value is None else (Path(value) if Path(value).is_absolute() else base / value)

    models = _parse_models(values["models"], source, base)
    methods = values["methods"]
    for index, model in enumerate(models):
        _check_method_pairs(model, model.methods or methods, f"{source}: models[{index}]")
    model_names = {m.name: m for m in models}
    ensembles = _parse_ensembles(values["ensembles"] or [], model_names, methods, source)
    retraining = _parse_retraining(values["filtered_retraining"], model_names, methods, source)
    refinements = _parse_refinements(values["refinements"] or [], model_names, methods, source)
    faithfulness = _parse_faithfulness(values["faithfulness"], models, methods, source)
    if retraining is not None and (values["recipe"] or {}).get("kind") == "volume":
        raise ConfigError(f"{source}: filtered_retraining is for slice recipes; a volume recipe cannot use it")
    if refinements and (values["recipe"] or {}).get("kind") == "volume":
        raise ConfigError(f"{source}: refinements are for slice recipes; a volume recipe cannot use them")
    segmentation = _parse_segmentation(values["segmentation"], model_names, methods, ensembles, refinements, source)
    if segmentation is not None and segmentation.ignore_band > 0:
        thresholds = _parse_thresholds(values["thresholds"], source)
        rules = [
            rule
            for text in segmentation.sources()
            for rule in _source_rules(
                parse_source(text, model_names, methods, ensembles, refinements, "segmentation.source"),
                thresholds,
                refinements,
            )
        ]
        adaptive = sorted({t.name for t in rules if t.mode == "adaptive"})
        if adaptive:  # a source could end with one of them; refused now, not mid-run
            raise ConfigError(
                f"{source}: segmentation.ignore_band: the source may use the adaptive thresholds {adaptive} (no "
                "single cut to put a band around); use ignore_band 0, name a rule (source@p95) or leave them out"
            )
    if segmentation is not None and (values["recipe"] or {}).get("kind") == "volume":
        raise ConfigError(
            f"{source}: segmentation: the segment stage trains 2D U-Nets on slices; a volume recipe cannot use it yet"
        )
    if values["folds"] < 2:
        raise ConfigError(f"{source}: folds must be at least 2, got {values['folds']}")
    given = [key for key in ("folds_file", "split_file", "test_dataset") if values[key] is not None]
    if len(given) > 1:
        raise ConfigError(f"{source}: {' and '.join(given)} exclude each other (each says which cases test)")
    if values["test_dataset"] is not None and values["csv"] is not None:
        raise ConfigError(f"{source}: test_dataset needs a Decathlon/nnU-Net training dataset (not csv)")
    return StudyConfig(
        dataset=path("dataset"),
        output=path("output"),
        models=models,
        methods=methods,
        csv=path("csv"),
        measures=path("measures"),
        folds=values["folds"],
        folds_file=path("folds_file"),
        split_file=path("split_file"),
        test_dataset=path("test_dataset"),
        seed=values["seed"],
        device=values["device"],
        recipe=dict(values["recipe"] or {}),
        thresholds=_parse_thresholds(values["thresholds"], source),
        empty_when_negative=values["empty_when_negative"],
        ensembles=ensembles,
        overlays=values["overlays"],
        batch_size=values["batch_size"],
        filtered_retraining=retraining,
        allow_outside_dataset=values["allow_outside_dataset"],
        refinements=refinements,
        source=source,
        faithfulness=faithfulness,
        segmentation=segmentation,
    )


def _parse_faithfulness(
    data: dict[str, Any] | None, models: list[ModelSpec], methods: list[str], source: str
) -> FaithfulnessSpec | None:
    """The checked ``faithfulness`` section as a spec (None when absent); its methods must be computed by some model."""
    if data is None:
        return None
    spec = FaithfulnessSpec(**data)
    computed = {m for model in models for m in (model.methods or methods)}
    missing = [m for m in spec.methods or [] if m not in computed]
    if missing:
        raise ConfigError(
            f"{source}: faithfulness.methods: {missing} computed by no model (methods: {sorted(computed)})"
        )
    return spec


def _parse_segmentation(
    data: dict[str, Any] | None,
    models: dict[str, ModelSpec],
    methods: list[str],
    ensembles: list[EnsembleSpec],
    refinements: list[RefinementSpec],
    source: str,
) -> SegmentationSpec | None:
    """The checked ``segmentation`` section as a spec (None when absent); its ``source`` must name something the
    study computes, and ``min_area`` <= ``max_area``."""
    if data is None:
        return None
    values = dict(data)
    values["filter"] = SegmentationFilterSpec(**(values.get("filter") or {}))
    spec = SegmentationSpec(**values)
    if spec.size % UNET_SIZE_MULTIPLE:
        raise ConfigError(
            f"{source}: segmentation.size: {spec.size} is not a multiple of {UNET_SIZE_MULTIPLE} (the U-Net halves "
            "its grid three times)"
        )
    if spec.depth % UNET_SIZE_MULTIPLE:
        raise ConfigError(
            f"{source}: segmentation.depth: {spec.depth} is not a multiple of {UNET_SIZE_MULTIPLE} (the 3D U-Net halves "
            "its stack three times)"
        )
    if spec.filter.min_area > spec.filter.max_area:
        raise ConfigError(
            f"{source}: segmentation.filter: min_area {spec.filter.min_area} is above max_area {spec.filter.max_area}"
        )
    where = f"{source}: segmentation.source"
    if isinstance(spec.source, list) and len(spec.source) == 1:  # one candidate: the same settings as the string
        spec.source = spec.source[0]
    texts = spec.sources()
    for index, text in enumerate(texts):
        parse_source(text, models, methods, ensembles, refinements, where if len(texts) == 1 else f"{where}[{index}]")
    if len(set(texts)) != len(texts):
        raise ConfigError(f"{where}: a source is listed twice: {texts}")
    return spec


def _source_rules(spec: SourceSpec, thresholds: list[Threshold], refinements: list[RefinementSpec]) -> list[Threshold]:
    """The threshold rules a parsed source may end with: its named rule(s), else those it is chosen among (the
    study's rules for a single map or ``best``, the refinements' for a refined source; ensembles choose fixed
    member thresholds on the grid)."""
    if spec.rule is not None:
        return [Threshold.parse(part) for part in spec.rule.split("|")]
    refined = [t for r in refinements for t in r.thresholds]
    if spec.kind == "refined":
        return [
            t
            for r in refinements
            if spec.member in r.members and spec.steps in [p.describe() for p in r.steps]
            for t in r.thresholds
        ]
    return {"best": thresholds, "best-refined": refined, "threshold": thresholds}.get(spec.kind, [])


def _parse_rule(text: str, where: str, members: int) -> str:
    """A named threshold rule (``p95``, ``otsu``, ``t=0.40``; for ``members`` > 1 ensemble members one fixed
    threshold each, joined by ``|``), canonicalised."""
    parts = text.split("|")
    if len(parts) != members:
        raise ConfigError(f"{where}: rule '{text}' gives {len(parts)} threshold(s) for {members} member(s)")
    try:
        rules = [Threshold.parse(part) for part in parts]
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if members > 1 and any(r.mode != "fixed" for r in rules):
        raise ConfigError(f"{where}: ensemble member thresholds must be fixed (t=...), got '{text}'")
    return "|".join(r.name for r in rules)


def parse_source(
    text: str,
    models: dict[str, ModelSpec],
    methods: list[str],
    ensembles: list[EnsembleSpec],
    refinements: list[RefinementSpec],
    where: str,
) -> SourceSpec:
    """``segmentation.source`` parsed and checked against what the study computes (see the module docstring)."""
    text = str(text).strip()
    if text in SOURCE_BEST:
        return SourceSpec(text)
    body, at, rule = text.rpartition("@") if "@" in text else (text, "", "")
    body = body.strip()
    by_name = {e.name: e for e in ensembles}
    if body in by_name:
        ensemble = by_name[body]
        members = 1 if ensemble.rule == "mean" else len(ensemble.members)
        return SourceSpec("ensemble", ensemble=body, rule=_parse_rule(rule.strip(), where, members) if at else None)
    member_text, join, steps_text = body.partition(" + ")
    if "(" in member_text:
        raise ConfigError(f"{where}: '{body}' is no ensemble of the study; ensembles: {sorted(by_name) or 'none'}")
    member = _parse_member(member_text.strip(), models, methods, where)
    chosen_rule = _parse_rule(rule.strip(), where, 1) if at else None
    if not join:
        return SourceSpec("threshold", member=member, rule=chosen_rule)
    try:
        steps = Pipeline.parse(steps_text.strip()).describe()
    except RefinementError as error:
        raise ConfigError(f"{where}: {error}") from None
    listed = [r for r in refinements if member in r.members and steps in [p.describe() for p in r.steps]]
    if not listed:
        raise ConfigError(
            f"{where}: refined source '{body}' is not among the study's refinements (member and steps must be listed)"
        )
    return SourceSpec("refined", member=member, steps=steps, rule=chosen_rule)


def _parse_retraining(
    data: Any, model_names: dict[str, ModelSpec], methods: list[str], source: str
) -> FilteredRetrainingSpec | None:

    if data is None:
        return None
    where = f"{source}: filtered_retraining"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping (model, method, variants, threshold, epochs)")
    unknown = set(data) - {f for f in FilteredRetrainingSpec.__dataclass_fields__}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    for key in ("model", "method", "threshold"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{where}.{key} must be a string, got {data[key]!r}")
    if data.get("model") not in model_names:
        raise ConfigError(f"{where}.model must name a listed model ({sorted(model_names)}), got {data.get('model')!r}")
    spec = FilteredRetrainingSpec(**data)
    try:
        spec.method = resolve_methods([spec.method])[0].name
    except (ValueError, KeyError) as error:
        raise ConfigError(f"{where}.method: {error}") from None
    if spec.method not in (model_names[spec.model].methods or methods):
        raise ConfigError(f"{where}.method: {spec.model} does not compute {spec.method!r}")
    variants = spec.variants if isinstance(spec.variants, list) else [spec.variants]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ConfigError(f"{where}.variants: {bad or variants} not among {list(VARIANTS)}")
    if len(set(variants)) != len(variants):
        raise ConfigError(f"{where}.variants: {variants} names a variant twice")
    spec.variants = [str(v) for v in variants]
    try:
        Threshold.parse(spec.threshold)
    except ValueError as error:
        raise ConfigError(f"{where}.threshold: {error}") from None
    if isinstance(spec.epochs, bool) or not isinstance(spec.epochs, int) or spec.epochs < 1:
        raise ConfigError(f"{where}.epochs must be a positive integer, got {spec.epochs!r}")
    return spec


def load_config(path: str | Path) -> StudyConfig:
    """Read a study configuration from a ``.yaml``/``.yml`` or ``.json`` file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: invalid YAML ({error})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: invalid JSON ({error})") from None
    return parse_config(data, str(path), path.resolve().parent)
