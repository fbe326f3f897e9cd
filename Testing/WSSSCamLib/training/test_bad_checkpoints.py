"""Bad checkpoints: non-finite weights and model cards that cannot build a network are refused, naming the file."""

import json

import pytest
import torch

from WSSSCamLib.models.zoo import build_model
from WSSSCamLib.training.checkpoint import (
    CheckpointError,
    ModelCard,
    load_checkpoint,
    save_checkpoint,
)


def saved(tmp_path):
    model = build_model("small-cnn", 1, 2)
    return model, save_checkpoint(model, ModelCard("small-cnn", 1, 2, ["no", "yes"], ["image"]), tmp_path / "model.pt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_checkpoints_with_non_finite_weights_are_refused(tmp_path, bad):
    model, path = saved(tmp_path)
    state = model.state_dict()
    name = next(iter(state))
    state[name][0] = bad
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=f"{path}: weight '{name}' holds .* NaN or infinite values"):
        load_checkpoint(path, device="cpu")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": "resnet9000"}, "unknown architecture 'resnet9000'"),
        ({"in_channels": 0}, "in_channels must be a positive integer"),
        ({"num_classes": "2"}, "num_classes must be a positive integer"),
    ],
)
def test_model_cards_that_cannot_build_a_network_are_named(tmp_path, change, message):
    _, path = saved(tmp_path)
    card = path.with_suffix(".json")
    card.write_text(json.dumps({**json.loads(card.read_text()), **change}))
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(path, device="cpu")
    assert str(error.value).startswith(str(card))
