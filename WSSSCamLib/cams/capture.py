"""One forward pass that captures activations at named layers, ready for one backward pass.

The trick that makes every gradient method cost about one forward pass: the network runs under
``torch.no_grad()`` up to the first target layer, so no autograd graph is recorded for the layers
before it. The hook on that layer turns its output into a fresh leaf that requires grad and switches
grad mode on, so only the layers *after* the target are recorded, and a backward from the class
score reaches the activations without touching earlier layers, parameters or the input.
``torch.no_grad()`` restores the caller's grad mode when it exits, also on error.

Each hook hands the rest of the network a *clone* of the captured tensor, so in-place operations
after the target layer (``ReLU(inplace=True)``) cannot overwrite the stored activations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .layers import SPATIAL_RANKS, named_module


@dataclass
class Capture:
    """What one captured forward pass produced.

    ``output``: the model's output tensor (N x K logits, or N x K x *spatial for segmentation nets).
    ``activations``: layer name -> activations A, N x C x H x W or N x C x D x H x W, on the model's device.
    """

    output: torch.Tensor
    activations: dict[str, torch.Tensor]


def model_output_tensor(output: object) -> torch.Tensor:
    """The logits tensor of a model's output: a tensor, the first of a tuple, or ``output["out"]``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict) and isinstance(output.get("out"), torch.Tensor):
        return output["out"]
    raise TypeError(
        f"model output of type {type(output).__name__} is not a tensor, a tuple of tensors or {{'out': tensor}}"
    )


@contextmanager
def _capturing_hooks(model: nn.Module, names: Sequence[str], track_grad: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Register the capturing forward hooks on ``names``; always remove them on exit."""
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor) or output.ndim not in SPATIAL_RANKS:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise ValueError(
                    f"layer '{name}' outputs {shape}; CAM methods need spatial activations "
                    "N x C x H x W (2D) or N x C x D x H x W (3D)"
                )
            if name in captured:
                raise ValueError(
                    f"layer '{name}' runs more than once per forward pass (a shared module); "
                    "choose a layer that is used once"
                )
            if track_grad:
                if not output.requires_grad:
                    output = output.detach().requires_grad_(True)
                torch.set_grad_enabled(True)
            captured[name] = output
            return output.clone()

        return hook

    try:
        for name in names:
            handles.append(named_module(model, name).register_forward_hook(make_hook(name)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def capture_forward(model: nn.Module, x: torch.Tensor, layers: Sequence[str], track_grad: bool) -> Capture:
    """Run ``model(x)`` once and capture the activations of ``layers``.

    With ``track_grad`` the returned activations are part of an autograd graph that starts at the
    earliest target layer, so ``torch.autograd.grad(score, activations)`` works; without it nothing
    is recorded at all.
    """
    with _capturing_hooks(model, layers, track_grad) as captured:
        with torch.no_grad():
            try:
                raw_output = model(x)
            except (RuntimeError, ValueError) as error:
                if isinstance(error, ValueError) and str(error).startswith("layer '"):
                    raise
                raise RuntimeError(
                    f"{type(model).__name__} failed on an input of shape {tuple(x.shape)}: {error}"
                ) from error
        missing = [name for name in layers if name not in captured]
        if missing:
            raise ValueError(f"layers {missing} did not run during the forward pass of {type(model).__name__}")
        return Capture(output=model_output_tensor(raw_output), activations=dict(captured))
