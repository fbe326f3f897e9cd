"""Bad input to the CAM engine: refused up front with a clear message, never a NaN map, a deep torch
error or a LinAlgError (eigen-cam on NaN input)."""

import numpy as np
import pytest
import torch

from WSSSCamLib.cams import CamEngine
from WSSSCamLib.models.zoo import build_model


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    return CamEngine(build_model("small-cnn", 1, 2).eval())


def images(n=2):
    return torch.rand(n, 1, 16, 16)


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (
            np.zeros((2, 1, 16, 16), np.float32),
            TypeError,
            r"torch.Tensor, got numpy.ndarray \(convert it with torch.from_numpy",
        ),
        ([[0.0]], TypeError, "torch.Tensor, got builtins.list"),
        (torch.zeros(0, 1, 16, 16), ValueError, "empty batch"),
        (torch.zeros(2, 1, 16, 16, dtype=torch.int64), TypeError, "floating-point tensor"),
    ],
)
def test_non_tensor_empty_and_integer_inputs(engine, x, error, message):
    with pytest.raises(error, match=message):
        engine(x, target=1, methods=["grad-cam"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("method", ["grad-cam", "eigen-cam", "score-cam"])
def test_non_finite_input_is_refused_before_any_method(engine, bad, method):
    x = images(3)
    x[1, 0, 4, 4] = bad
    with pytest.raises(ValueError, match=r"input holds 1 NaN or infinite values \(samples \[1\]\)"):
        engine(x, target=1, methods=[method])


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (1.5, ValueError, "a fractional class such as 1.5"),
        ([0, 1.5], ValueError, "integer class indices"),
        (torch.tensor([1.0, 0.0]), ValueError, "integer class indices"),
        (True, TypeError, "integer class indices, got True"),
        ("1", TypeError, "integer class indices, got '1'"),
        (2, ValueError, "out of range"),
    ],
)
def test_non_integer_targets_are_refused(engine, target, error, message):
    with pytest.raises(error, match=message):
        engine(images(), target=target, methods=["grad-cam"])


def test_integer_targets_of_any_integer_type_still_work(engine):
    for target in (1, np.int64(1), [1, 0], torch.tensor([1, 0])):
        assert engine(images(), target=target, methods=["grad-cam"])["grad-cam"].shape == (2, 16, 16)


def test_a_model_with_nan_weights_is_named_not_mapped():
    model = build_model("small-cnn", 1, 2).eval()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(
        ValueError, match=r"model.s output is NaN or infinite for samples \[0, 1\] .* \(non-finite weights\?\)"
    ):
        CamEngine(model)(images(), target=1, methods=["eigen-cam"])
