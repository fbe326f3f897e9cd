"""Finding the layers a CAM is computed at.

Layers are named as in ``model.named_modules()`` (e.g. ``"layer4"`` or ``"features.28"``).
When no name is given, a probe forward pass on one sample records the spatial size of every
module's output, in the order the modules finish, and picks:

* for a classifier (non-spatial output): the last module at the coarsest resolution, i.e. the
  deepest feature map before global pooling (``layer4`` for a ResNet, ``features`` for a DenseNet);
* for a segmentation network (spatial output): the last module at the coarsest resolution, the
  bottleneck of an encoder-decoder;
* for Layer-CAM fusion: the last module of each of the three deepest resolution stages.

Pooling, dropout, flattening and identity modules are never candidates, nor outputs of one
pixel/voxel (channel descriptors such as squeeze-and-excitation gates: they cannot localise).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

SPATIAL_RANKS = (4, 5)
"""Tensor ranks of spatial activations: N x C x H x W (2D) and N x C x D x H x W (3D)."""

_NEVER_CANDIDATES = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.dropout._DropoutNd,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
)


def named_module(model: nn.Module, name: str) -> nn.Module:
    """Return the sub-module called ``name`` or raise a ``ValueError`` naming close matches."""
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5)
    hint = f"; did you mean one of {close}?" if close else ""
    raise ValueError(
        f"layer '{name}' does not exist in {type(model).__name__}{hint} (names are those of model.named_modules())"
    )


def first_convolution(model: nn.Module) -> nn.modules.conv._ConvNd | None:
    """The first convolution registered in ``model`` (it defines the input rank and channels)."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module
    return None


def check_batch(x: object) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``x`` is a non-empty floating-point tensor of finite values.

    Checked before anything runs: a NumPy array, an empty batch, integer images or a NaN/infinite value
    would otherwise fail deep inside the network or give NaN logits and all-zero maps without a word.
    """
    if not isinstance(x, torch.Tensor):
        hint = " (convert it with torch.from_numpy(array))" if type(x).__module__.startswith("numpy") else ""
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__module__}.{type(x).__name__}{hint}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"input of shape {tuple(x.shape)} is an empty batch: nothing to explain")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor (images), got dtype {x.dtype}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        samples = sorted({int(i) for i in (~finite).reshape(x.shape[0], -1).any(1).nonzero().flatten().tolist()})
        raise ValueError(
            f"input holds {int((~finite).sum())} NaN or infinite values (samples {samples[:10]}); "
            "CAMs of such input are meaningless"
        )


def check_input(model: nn.Module, x: torch.Tensor) -> None:
    """Raise ``ValueError`` when ``x`` cannot be an input of ``model``.

    The input must be N x C x H x W for a network whose first convolution is 2D, and
    N x C x D x H x W for a 3D one, with C equal to that convolution's input channels.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    conv = first_convolution(model)
    if conv is None:
        if x.ndim not in SPATIAL_RANKS:
            raise ValueError(f"input of shape {tuple(x.shape)} is neither N x C x H x W nor N x C x D x H x W")
        return
    spatial = len(conv.kernel_size)
    expected = spatial + 2
    layout = {1: "N x C x L", 2: "N x C x H x W", 3: "N x C x D x H x W"}[spatial]
    if x.ndim != expected:
        raise ValueError(
            f"input of shape {tuple(x.shape)} has rank {x.ndim}, but {type(model).__name__} starts with "
            f"a {type(conv).__name__} and expects rank {expected} ({layout})"
        )
    if x.shape[1] != conv.in_channels:
        raise ValueError(
            f"input of shape {tuple(x.shape)} has {x.shape[1]} channels, but the first convolution "
            f"of {type(model).__name__} expects {conv.in_channels}"
        )


@dataclass(frozen=True)
class ProbedLayer:
    """One module's output as seen by the probe: its name and spatial size (H, W) or (D, H, W)."""

    name: str
    spatial_size: tuple[int, ...]


def probe_spatial_layers(model: nn.Module, example: torch.Tensor) -> tuple[list[ProbedLayer], torch.Tensor]:
    """Run one sample through ``model`` and list the spatial outputs of candidate modules.

    Returns the candidates in the order the modules finished, and the model's output.
    Every hook is removed before returning, also on error.
    """
    seen: list[ProbedLayer] = []
    handles = []

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim in SPATIAL_RANKS and output.shape[2:].numel() > 1:
                seen.append(ProbedLayer(name, tuple(output.shape[2:])))

        return hook

    try:
        for name, module in model.named_modules():
            if name and not isinstance(module, _NEVER_CANDIDATES):
                handles.append(module.register_forward_hook(make_hook(name)))
        with torch.no_grad():
            output = model(example[:1])
    finally:
        for handle in handles:
            handle.remove()
    return seen, output


def resolution_stages(probed: list[ProbedLayer]) -> list[ProbedLayer]:
    """The last module of each resolution, ordered by where that resolution first appears."""
    last_at: dict[tuple[int, ...], ProbedLayer] = {}
    order: list[tuple[int, ...]] = []
    for layer in probed:
        if layer.spatial_size not in last_at:
            order.append(layer.spatial_size)
        last_at[layer.spatial_size] = layer
    return [last_at[size] for size in order]


def _numel(size: tuple[int, ...]) -> int:
    return int(torch.tensor(size).prod())


def default_layers(model: nn.Module, example: torch.Tensor, fusion_count: int = 3) -> tuple[str, list[str]]:
    """Pick the default target layer and the default Layer-CAM fusion layers (see module docstring)."""
    probed, _ = probe_spatial_layers(model, example)
    if not probed:
        raise ValueError(
            f"{type(model).__name__} has no module with a spatial output (N x C x H x W or N x C x D x H x W); "
            "pass target_layer explicitly"
        )
    stages = resolution_stages(probed)
    coarsest = min(_numel(stage.spatial_size) for stage in stages)
    target = [stage for stage in stages if _numel(stage.spatial_size) == coarsest][-1].name
    ordered = [stage.name for stage in stages]
    upto = ordered.index(target) + 1
    fusion = ordered[max(0, upto - fusion_count) : upto]
    return target, fusion


def classifier_weight(model: nn.Module, channels: int, name: str | None = None) -> tuple[str, torch.Tensor]:
    """The (classes x channels) weight of the linear layer that follows global pooling, for CAM (Zhou).

    With ``name=None`` the last ``nn.Linear`` (or 1x1 convolution) registered in the model is used.
    Raises ``ValueError`` when its input size differs from ``channels``: then the network has no
    global-pooling-then-linear head and Zhou's CAM is undefined for it.
    """
    if name is None:
        heads = [
            (n, m)
            for n, m in model.named_modules()
            if isinstance(m, nn.Linear)
            or (isinstance(m, nn.modules.conv._ConvNd) and all(k == 1 for k in m.kernel_size))
        ]
        if not heads:
            raise ValueError(
                f"{type(model).__name__} has no linear layer; CAM (Zhou) needs pooling then a linear layer"
            )
        name, module = heads[-1]
    else:
        module = named_module(model, name)
    weight = getattr(module, "weight", None)
    if weight is None:
        raise ValueError(f"layer '{name}' has no weight; CAM (Zhou) needs the linear layer after global pooling")
    weight = weight.detach().reshape(weight.shape[0], -1)
    if weight.shape[1] != channels:
        raise ValueError(
            f"CAM (Zhou) needs global pooling followed by one linear layer: '{name}' takes {weight.shape[1]} "
            f"features but the target layer has {channels} channels; use Grad-CAM for this network"
        )
    return name, weight
