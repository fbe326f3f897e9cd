"""Bad study configurations: every value type-checked at load time from one schema, the file and the key
named; impossible studies (no models, Seg- methods on a classifier) refused before they start."""

import pytest
import torch
import yaml

from WSSSCamLib.schema import ConfigError
from WSSSCamLib.study import load_config, parse_config, run_study

BASE = {
    "dataset": "data",
    "output": "out",
    "models": [{"name": "a", "architecture": "small-cnn"}],
    "methods": ["grad-cam"],
}


def refused(change, tmp_path):
    """The ConfigError message of BASE with ``change`` applied, loaded from a YAML file."""
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: ") :]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"thresholds": "otsu"}, "thresholds: expected a list, got the string 'otsu' (write [otsu] for a list of one)"),
        ({"methods": "grad-cam"}, "methods: expected a list, got the string 'grad-cam'"),
        ({"folds": "two"}, "folds: expected an integer, got the string 'two'"),
        ({"folds": 2.5}, "folds: expected an integer, got 2.5 (float)"),
        ({"seed": True}, "seed: expected an integer, got True (bool)"),
        ({"overlays": -1}, "overlays: expected an integer >= 0, got -1"),
        ({"batch_size": 0}, "batch_size: expected an integer >= 1, got 0"),
        ({"empty_when_negative": "yes"}, "empty_when_negative: expected true or false, got the string 'yes'"),
        ({"dataset": ["a", "b"]}, "dataset: expected a non-empty string"),
        ({"recipe": {"sise": 32}}, "recipe: unknown key 'sise' (did you mean 'size'?)"),
        ({"recipe": {"size": -4}}, "recipe.size: expected an integer >= 1, got -4"),
        ({"recipe": {"axis": "Z"}}, "recipe.axis: 'Z' is not one of ['I', 'J', 'K']"),
        ({"recipe": {"clip_percentiles": [99, 1]}}, "recipe.clip_percentiles: expected two percentiles"),
        ({"recipe": "big"}, "recipe: expected a mapping of keys"),
        ({"device": "tpu:9"}, "device: 'tpu:9' is not a device; expected auto, cpu, cuda, cuda:N or mps"),
        ({"device": "gpu"}, "device: 'gpu' is not a device"),
        ({"models": []}, "models: expected at least 1 item(s), got 0"),
        ({"models": "small-cnn"}, "models: expected a list, got the string 'small-cnn'"),
        (
            {"models": [{"name": "a", "architecture": "small-cnn", "train": {"epoch": 2}}]},
            "models[0].train: unknown key 'epoch' (did you mean 'epochs'?)",
        ),
        (
            {"models": [{"name": "a", "architecture": "small-cnn", "train": {"epochs": "10"}}]},
            "models[0].train.epochs: expected an integer, got the string '10'",
        ),
        (
            {"models": [{"name": "a", "architecture": "small-cnn", "train": {"learning_rate": 0}}]},
            "models[0].train.learning_rate: 0 is out of range (> 0)",
        ),
        (
            {"models": [{"name": "a", "architecture": "small-cnn", "train": {"balance": "weights"}}]},
            "models[0].train.balance: 'weights' is not one of ['loss', 'none', 'sampler']",
        ),
        (
            {"models": [{"name": "a", "architecture": "small-cnn", "train": {"device": "cuda:x"}}]},
            "models[0].train.device: 'cuda:x' is not a device",
        ),
        ({"models": [{"name": "a", "architecture": "small-cnn", "colour": 1}]}, "models[0]: unknown key 'colour'"),
        (
            {"models": [{"name": "a", "architecture": "small-cnn", "methods": "grad-cam"}]},
            "models[0].methods: expected a list, got the string 'grad-cam'",
        ),
        (
            {"models": [{"name": "a", "architecture": "small-cnn", "checkpoints": "c/{fold}/{name}.pt"}]},
            "models[0].checkpoints: ",
        ),
        (
            {"models": [{"name": "a", "architecture": "small-cnn"}, {"name": "a", "architecture": "resnet18"}]},
            "models: model names must be unique; repeated: ['a']",
        ),
        (
            {"methods": ["seg-grad-cam"]},
            "models[0]: method 'seg-grad-cam' explains segmentation networks; model 'a' (small-cnn) is a classifier",
        ),
        (
            {"models": [{"name": "u", "architecture": "monai-unet"}]},
            "models[0]: model 'u' (monai-unet) is a segmentation network",
        ),
        ({"ensembles": [{"rule": "and", "members": "a/grad-cam"}]}, "ensembles[0].members: expected a list"),
        (
            {"ensembles": [{"rule": "and", "members": ["a/grad-cam", "a/grad-cam"], "weights": 1}]},
            "ensembles[0]: unknown key 'weights'",
        ),
        ({"thresholds": [["t=0.5"]]}, "thresholds[0]: expected a threshold name"),
        ({"segmentation": {"size": 100}}, "segmentation.size: 100 is not a multiple of 8"),
        (
            {"thresholds": ["t=0.5", "adaptive"], "segmentation": {"ignore_band": 0.1}},
            "segmentation.ignore_band: the source may use the adaptive thresholds ['adaptive15']",
        ),
        (
            {"segmentation": {"ignore_band": 0.1, "source": ["best", "a/grad-cam@adaptive:5"]}},
            "segmentation.ignore_band: the source may use the adaptive thresholds ['adaptive5']",
        ),
        (
            {"segmentation": {"source": ["best", "a/grad-cam@t=2"]}},
            "segmentation.source[1]: ",
        ),
        ({"allow_outside_dataset": "yes"}, "allow_outside_dataset: expected true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path, change, expected):
    assert refused(change, tmp_path).startswith(expected)


def test_a_band_is_refused_only_when_the_source_may_end_with_an_adaptive_rule(tmp_path):
    """A named fixed rule, or a refined source whose refinements use no adaptive rule, keeps its band even when
    the study also thresholds by an adaptive rule."""
    adaptive = {"thresholds": ["t=0.5", "adaptive"]}
    named = parse_config({**BASE, **adaptive, "segmentation": {"ignore_band": 0.1, "source": "a/grad-cam@p95"}}, "t")
    assert named.segmentation.ignore_band == 0.1
    refinements = [{"members": ["a/grad-cam"], "thresholds": ["p95"], "steps": ["gate"]}]
    refined = {**adaptive, "refinements": refinements, "segmentation": {"ignore_band": 0.1, "source": "best-refined"}}
    assert parse_config({**BASE, **refined}, "t").segmentation.source == "best-refined"
    with pytest.raises(ConfigError, match="adaptive15"):
        parse_config({**BASE, **refined, "segmentation": {"ignore_band": 0.1, "source": "a/grad-cam"}}, "t")


def test_the_schema_accepts_every_valid_key(tmp_path):
    config = parse_config(
        {
            **BASE,
            "recipe": {"size": 32, "axis": "J", "clip_percentiles": [1, 99], "context_channel": "FLAIR"},
            "thresholds": ["t=0.5", 0.7, "otsu"],
            "device": "cuda:1",
            "allow_outside_dataset": True,
            "models": [
                {
                    "name": "a",
                    "architecture": "small-cnn",
                    "train": {"epochs": 3, "learning_rate": 1e-3, "balance": "sampler", "device": "cpu"},
                }
            ],
        },
        "t",
        tmp_path,
    )
    assert config.recipe["clip_percentiles"] == (1, 99) and config.allow_outside_dataset
    assert [t.name for t in config.thresholds] == ["t=0.50", "t=0.70", "otsu"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused_before_any_work(tmp_path):
    from WSSSCamLib.devices import DeviceError

    for change in (
        {"device": "cuda"},
        {"models": [{"name": "a", "architecture": "small-cnn", "train": {"device": "cuda:0"}}]},
    ):
        config = parse_config({**BASE, **change}, "study.yaml", tmp_path)
        with pytest.raises(
            DeviceError, match="study.yaml: .*device: device 'cuda(:0)?' does not exist: this machine has 0 CUDA"
        ):
            run_study(config, progress=False)
        assert not (tmp_path / "out").exists()  # nothing generated, nothing trained, no output folder
