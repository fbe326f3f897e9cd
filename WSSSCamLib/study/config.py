"""The study configuration: what a ``wssscam study CONFIG`` run computes, read from YAML or JSON.

Example (YAML)::

    dataset: ../shared/data/lgg-flair-dev       # Decathlon/nnU-Net folder, or a folder of volumes with `csv`
    measures: null                               # optional CSV: case, <external per-case measures>
    output: runs/lgg-study
    folds: 5
    folds_file: null                             # optional folds.json to reuse (e.g. of `wssscam train` runs)
    seed: 0
    device: auto
    recipe: {size: 96, axis: K, context_channel: FLAIR}
    models:
      - {name: small-cnn, architecture: small-cnn, train: {epochs: 20, patience: 0}}
      - {name: resnet18, architecture: resnet18, train: {epochs: 12, patience: 0}}
      - {name: mine, architecture: resnet34, checkpoints: "ckpt/fold{fold}/model.pt"}   # trained elsewhere
    methods: [grad-cam, grad-cam++, hires-cam, xgrad-cam, layer-cam, score-cam]
    thresholds: [grid, p95, mean, median, otsu]  # grid = t in 0.1..0.9
    empty_when_negative: false                   # single configurations: empty the mask where the classifier says negative
    ensembles:                                   # members are model/method; thresholds grid-searched on training cases
      - {rule: and, members: [small-cnn/grad-cam, resnet18/grad-cam]}
    overlays: 4                                  # example overlay figures
    filtered_retraining: {model: small-cnn, method: grad-cam, variants: [cam, mask], epochs: 10}   # seed 003

Relative paths are resolved against the configuration file's folder. Every error names the file
and the key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..cams import resolve_methods
from ..masks import RULES, THRESHOLD_GRID, Threshold
from ..models.zoo import ARCHITECTURES


class ConfigError(ValueError):
    """The study configuration is invalid; the message names the file and the key."""


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
    rule: str
    members: list[tuple[str, str]]  # (model name, method)

    @property
    def name(self) -> str:
        return f"{self.rule}({', '.join(f'{m}/{k}' for m, k in self.members)})"


@dataclass
class FilteredRetrainingSpec:
    """Seed 003's check: retrain ``model``'s architecture on CAM-filtered and on mask-filtered images
    (variants: see :mod:`WSSSCamLib.study.retraining`; ``threshold`` is used by ``cam-mask`` only)."""

    model: str
    method: str = "grad-cam"
    variants: list[str] = field(default_factory=lambda: ["cam", "mask"])
    threshold: str = "t=0.50"
    epochs: int = 10


@dataclass
class StudyConfig:
    dataset: Path
    output: Path
    models: list[ModelSpec]
    methods: list[str]
    csv: Path | None = None
    measures: Path | None = None
    folds: int = 5
    folds_file: Path | None = None
    seed: int = 0
    device: str = "auto"
    recipe: dict[str, Any] = field(default_factory=dict)
    thresholds: list[Threshold] = field(default_factory=list)
    empty_when_negative: bool = False
    ensembles: list[EnsembleSpec] = field(default_factory=list)
    overlays: int = 4
    batch_size: int = 32
    filtered_retraining: FilteredRetrainingSpec | None = None
    source: str = ""

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
        for key in ("dataset", "output", "csv", "measures", "folds_file"):
            data[key] = str(data[key]) if data[key] is not None else None
        data["ensembles"] = [{"rule": e.rule, "members": [f"{m}/{k}" for m, k in e.members]} for e in self.ensembles]
        return data


_KNOWN_KEYS = {"dataset", "csv", "measures", "output", "folds", "folds_file", "seed", "device", "recipe", "models", "methods", "thresholds",
               "empty_when_negative", "ensembles", "overlays", "batch_size", "filtered_retraining"}


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


def _parse_models(items: list, where: str, base: Path) -> list[ModelSpec]:
    models = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "name" not in item or "architecture" not in item:
            raise ConfigError(f"{where}: models[{index}] needs at least 'name' and 'architecture'")
        if item["architecture"] not in ARCHITECTURES:
            raise ConfigError(f"{where}: models[{index}]: unknown architecture '{item['architecture']}'; known: {sorted(ARCHITECTURES)}")
        unknown = set(item) - {"name", "architecture", "train", "checkpoints", "methods"}
        if unknown:
            raise ConfigError(f"{where}: models[{index}]: unknown keys {sorted(unknown)}")
        checkpoints = item.get("checkpoints")
        if checkpoints is not None:
            checkpoints = str(base / checkpoints) if not Path(checkpoints).is_absolute() else checkpoints
            if "{fold}" not in checkpoints:
                raise ConfigError(f"{where}: models[{index}].checkpoints must contain '{{fold}}' (one checkpoint per fold)")
        models.append(ModelSpec(str(item["name"]), item["architecture"], dict(item.get("train") or {}), checkpoints, item.get("methods")))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: model names must be unique, got {names}")
    return models


def parse_config(data: dict[str, Any], source: str = "<config>", base: Path | None = None) -> StudyConfig:
    """Validate a configuration dictionary; paths relative to ``base``."""
    base = base or Path.cwd()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
    for key in ("dataset", "output", "models", "methods"):
        if key not in data:
            raise ConfigError(f"{source}: missing required key '{key}'")

    def path(key: str) -> Path | None:
        value = data.get(key)
        return None if value is None else (Path(value) if Path(value).is_absolute() else base / value)

    models = _parse_models(list(data["models"]), source, base)
    try:
        methods = [m.name for m in resolve_methods(data["methods"])]
        for model in models:
            if model.methods is not None:
                model.methods = [m.name for m in resolve_methods(model.methods)]
    except (KeyError, ValueError) as error:
        raise ConfigError(f"{source}: methods: {error}") from None
    model_names = {m.name: m for m in models}
    ensembles = []
    for index, item in enumerate(data.get("ensembles") or []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if rule not in RULES:
            raise ConfigError(f"{source}: ensembles[{index}].rule must be one of {list(RULES)}, got {rule!r}")
        members = []
        for member in item.get("members") or []:
            model_name, _, method = str(member).partition("/")
            if model_name not in model_names or not method:
                raise ConfigError(f"{source}: ensembles[{index}]: member '{member}' is not <model>/<method> of a listed model")
            try:
                method = resolve_methods(method)[0].name
            except (KeyError, ValueError) as error:
                raise ConfigError(f"{source}: ensembles[{index}]: member '{member}': {error}") from None
            if method not in (model_names[model_name].methods or methods):
                raise ConfigError(f"{source}: ensembles[{index}]: member '{member}': {model_name} does not compute {method}")
            members.append((model_name, method))
        if len(members) < 2:
            raise ConfigError(f"{source}: ensembles[{index}] needs at least two members")
        ensembles.append(EnsembleSpec(rule, members))
    retraining = _parse_retraining(data.get("filtered_retraining"), model_names, methods, source)
    folds = int(data.get("folds", 5))
    if folds < 2:
        raise ConfigError(f"{source}: folds must be at least 2, got {folds}")
    return StudyConfig(
        dataset=path("dataset"), output=path("output"), models=models, methods=methods, csv=path("csv"), measures=path("measures"),
        folds=folds, folds_file=path("folds_file"), seed=int(data.get("seed", 0)), device=str(data.get("device", "auto")), recipe=dict(data.get("recipe") or {}),
        thresholds=_parse_thresholds(list(data.get("thresholds") or ["grid", "p95", "mean", "median", "otsu"]), source),
        empty_when_negative=bool(data.get("empty_when_negative", False)), ensembles=ensembles, overlays=int(data.get("overlays", 4)),
        batch_size=int(data.get("batch_size", 32)), filtered_retraining=retraining, source=source,
    )


def _parse_retraining(data: Any, model_names: dict[str, ModelSpec], methods: list[str], source: str) -> FilteredRetrainingSpec | None:
    from .retraining import VARIANTS

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
