"""The CAM engine: every requested method for a batch, gradient methods from one shared pass.

Example::

    from WSSSCamLib.cams import CamEngine
    engine = CamEngine(model)                       # target layer found by a probe pass
    result = engine(images, target=1, methods=["grad-cam", "grad-cam++", "hires-cam",
                                               "xgrad-cam", "layer-cam", "score-cam"])
    heat = result["grad-cam"]                       # N x H x W in [0, 1], on the model's device

Cost: one forward pass (no autograd graph before the target layer) plus one backward pass through
the layers *after* the target layer serve every gradient method at once; CAM (Zhou) and Eigen-CAM
reuse the same activations; Score-CAM adds the masked-input forward passes; SmoothGrad-CAM++ adds
one pass per noisy copy.

The engine never changes the model: it does not switch train/eval mode (call ``model.eval()``
first; a warning is issued for a model in training mode), registers hooks only for the duration
of a call and removes them on every exit path, and neither parameters nor the input receive
gradients.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from . import postprocess
from .activation_maps import class_activation_map, eigen_cam
from .capture import Capture, capture_forward
from .gradient_maps import grad_cam_plus_plus, weighted_sum
from .layers import check_batch, check_input, classifier_weight, default_layers, named_module
from .methods import Method, resolve_methods
from .score_maps import default_score_chunk_size, highest_variance_channels, score_cam_weights
from .targets import ClassTarget, Region, check_logits, class_indices, explained_scores


@dataclass
class CamResult(Mapping):
    """The maps of one call, keyed by canonical method name (see :data:`METHODS`).

    ``maps[name]``: N x H x W (2D) or N x D x H x W (3D) tensors on the model's device; in [0, 1]
    on the input grid unless the call asked for raw maps. ``classes``: the N explained classes.
    ``logits``: the model's output for the batch (detached). ``target_layer``: the layer used.
    """

    maps: dict[str, torch.Tensor]
    classes: torch.Tensor
    logits: torch.Tensor
    target_layer: str
    fusion_layers: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.maps[resolve_methods(name)[0].name]

    def __iter__(self):
        return iter(self.maps)

    def __len__(self) -> int:
        return len(self.maps)


class CamEngine:
    """Computes CAMs of ``model`` at ``target_layer`` (and ``fusion_layers`` for Layer-CAM fusion).

    Args:
        model: any network whose target layer outputs N x C x H x W or N x C x D x H x W; its output
            is N x K logits (classifier) or N x K x *spatial logits (segmentation, Seg- methods).
        target_layer: module name (``model.named_modules()``); ``None`` picks the deepest
            coarsest-resolution layer by a probe pass (see :mod:`WSSSCamLib.cams.layers`).
        fusion_layers: layers fused by ``layer-cam-fused``, shallow to deep; ``None`` picks the last
            module of the three deepest resolution stages.
        classifier_layer: the linear layer after global pooling, for CAM (Zhou); ``None`` takes the
            last linear layer.
        gamma: Layer-CAM fusion scale (Syed et al. 2023 eq. 13).
        score_chunk_size: masked inputs per forward pass in Score-CAM (bounds memory); ``None``
            picks 16 on the CPU (the fastest batch there) and up to 256 on a GPU (about 1 GiB of
            masked inputs).
        faster_score_channels: k, the channels scored by Faster Score-CAM.
        smooth_samples, smooth_noise: SmoothGrad-CAM++ noisy copies and their noise standard
            deviation as a fraction of each sample's intensity range (max - min).
        seed: seed of the SmoothGrad-CAM++ noise (same seed, same maps).
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | None = None,
        fusion_layers: Sequence[str] | None = None,
        classifier_layer: str | None = None,
        *,
        gamma: float = 2.0,
        score_chunk_size: int | None = None,
        faster_score_channels: int = 10,
        smooth_samples: int = 8,
        smooth_noise: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.model = model
        for name in [target_layer, classifier_layer, *(fusion_layers or [])]:
            if name is not None:
                named_module(model, name)
        if (score_chunk_size is not None and score_chunk_size < 1) or faster_score_channels < 1 or smooth_samples < 1:
            raise ValueError("score_chunk_size, faster_score_channels and smooth_samples must be at least 1")
        self.target_layer = target_layer
        self.fusion_layers = list(fusion_layers) if fusion_layers is not None else None
        self.classifier_layer = classifier_layer
        self.gamma = gamma
        self.score_chunk_size = score_chunk_size
        self.faster_score_channels = faster_score_channels
        self.smooth_samples = smooth_samples
        self.smooth_noise = smooth_noise
        self.seed = seed

    # ------------------------------------------------------------------ public API
    def __call__(
        self,
        x: torch.Tensor,
        target: ClassTarget = None,
        methods: str | Iterable[str] = "grad-cam",
        region: Region | None = None,
        *,
        normalize: bool = True,
        upsample: bool = True,
    ) -> CamResult:
        """CAMs of ``x`` (N x C x H x W or N x C x D x H x W) for classes ``target``.

        ``target``: an int for all samples, one int per sample, or None for the predicted class.
        ``region``: for segmentation networks, the pixel/voxel set M (default: the predicted
        region of the target class). ``normalize=False`` keeps the ReLU'd map values;
        ``upsample=False`` keeps the layer's resolution.
        """
        chosen = resolve_methods(methods)
        check_batch(x)
        x = x.to(self._device())
        check_input(self.model, x)
        if self.model.training:
            warnings.warn("the model is in training mode; call model.eval() for reproducible CAMs", stacklevel=2)
        self._resolve_default_layers(x, chosen)

        gradient_layers = self._gradient_layers(chosen)
        capture = capture_forward(self.model, x, self._captured_layers(chosen), track_grad=bool(gradient_layers))
        logits = capture.output.detach()
        check_logits(logits)
        classes = class_indices(target, logits)
        region_mask = self._region_mask(region, logits, classes, chosen)
        gradients = self._gradients(capture, classes, region_mask, gradient_layers)
        activations = {name: a.detach() for name, a in capture.activations.items()}
        del capture

        size = tuple(x.shape[2:]) if upsample else None
        maps = {m.name: self._method_map(m, x, activations, gradients, classes, region_mask, size) for m in chosen}
        if normalize:
            maps = {name: postprocess.min_max_normalize(m) for name, m in maps.items()}
        return CamResult(maps, classes, logits, self.target_layer, list(self.fusion_layers or []))

    # ------------------------------------------------------------------ layers
    def _device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def _resolve_default_layers(self, x: torch.Tensor, chosen: list[Method]) -> None:
        needs_fusion = any(m.kind == "fused-gradient" for m in chosen)
        if self.target_layer is None or (needs_fusion and self.fusion_layers is None):
            target, fusion = default_layers(self.model, x)
            self.target_layer = self.target_layer or target
            if self.fusion_layers is None:
                self.fusion_layers = fusion

    def _gradient_layers(self, chosen: list[Method]) -> list[str]:
        layers: list[str] = []
        if any(m.kind == "gradient" for m in chosen):
            layers.append(self.target_layer)
        if any(m.kind == "fused-gradient" for m in chosen):
            layers += [name for name in self.fusion_layers if name not in layers]
        return layers

    def _captured_layers(self, chosen: list[Method]) -> list[str]:
        layers = [self.target_layer]
        if any(m.kind == "fused-gradient" for m in chosen):
            layers += [name for name in self.fusion_layers if name not in layers]
        return layers

    # ------------------------------------------------------------------ targets and gradients
    @staticmethod
    def _region_mask(
        region: Region | None, logits: torch.Tensor, classes: torch.Tensor, chosen: list[Method]
    ) -> torch.Tensor | None:
        segmentation = logits.ndim > 2
        if not segmentation:
            if region is not None:
                raise ValueError(
                    f"a Region applies to segmentation networks; this model outputs {tuple(logits.shape)} logits"
                )
            seg_only = [m.name for m in chosen if m.segmentation]
            if seg_only:
                raise ValueError(
                    f"{seg_only} explain segmentation networks (N x K x *spatial output); this model outputs {tuple(logits.shape)}"
                )
            return None
        if any(m.kind == "classifier" for m in chosen):
            raise ValueError(
                "CAM (Zhou) needs a classifier with global pooling and a linear layer; use seg-grad-cam for segmentation networks"
            )
        return (region or Region.predicted()).to_mask(logits, classes)

    @staticmethod
    def _gradients(
        capture: Capture, classes: torch.Tensor, region_mask: torch.Tensor | None, layers: list[str]
    ) -> dict[str, torch.Tensor]:
        if not layers:
            return {}
        with torch.enable_grad():  # the caller may run under torch.no_grad()
            score = explained_scores(capture.output, classes, region_mask).sum()
        inputs = [capture.activations[name] for name in layers]
        if not score.requires_grad:
            raise ValueError(f"the model's output does not depend on layers {layers}")
        grads = torch.autograd.grad(score, inputs, allow_unused=True)
        unused = [name for name, g in zip(layers, grads) if g is None]
        if unused:
            raise ValueError(f"the model's output does not depend on layers {unused}")
        return {name: g.detach() for name, g in zip(layers, grads)}

    # ------------------------------------------------------------------ maps
    def _method_map(
        self,
        method: Method,
        x: torch.Tensor,
        activations: dict[str, torch.Tensor],
        gradients: dict[str, torch.Tensor],
        classes: torch.Tensor,
        region_mask: torch.Tensor | None,
        size: tuple[int, ...] | None,
    ) -> torch.Tensor:
        """ReLU'd map of one method, on the input grid when ``size`` is given (not normalised)."""
        if method.kind == "fused-gradient":
            layer_maps = [method.map_fn(activations[n], gradients[n]).clamp(min=0) for n in self.fusion_layers]
            fused_size = size or max((tuple(m.shape[1:]) for m in layer_maps), key=lambda s: torch.tensor(s).prod())
            return postprocess.fuse_layer_maps(layer_maps, fused_size, self.gamma)
        a = activations[self.target_layer]
        if method.kind == "gradient":
            raw = method.map_fn(a, gradients[self.target_layer])
        elif method.kind == "classifier":
            _, weight = classifier_weight(self.model, a.shape[1], self.classifier_layer)
            raw = class_activation_map(a, weight, classes)
        elif method.kind == "activation":
            raw = eigen_cam(a)
        elif method.kind == "score":
            channels = (
                highest_variance_channels(a, self.faster_score_channels) if method.name == "faster-score-cam" else None
            )
            chunk = self.score_chunk_size or default_score_chunk_size(x)
            weights = score_cam_weights(self.model, x, a, classes, region_mask, channels, chunk)
            raw = weighted_sum(weights, a)
        else:
            raw = self._smooth_grad_cam_pp(x, classes, region_mask)
        raw = raw.clamp(min=0)
        return postprocess.upsample(raw, size) if size else raw

    def _smooth_grad_cam_pp(
        self, x: torch.Tensor, classes: torch.Tensor, region_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Mean of the ReLU'd Grad-CAM++ maps of ``smooth_samples`` noisy copies of ``x``.

        Noise: Gaussian, standard deviation ``smooth_noise * (max - min)`` of each sample, drawn
        from a generator seeded with ``seed`` on the input's device. The explained class and region
        are those of the clean input.
        """
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        spread = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).reshape((-1,) + (1,) * (x.ndim - 1))
        total = None
        for _ in range(self.smooth_samples):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            noisy = x + noise * (self.smooth_noise * spread)
            capture = capture_forward(self.model, noisy, [self.target_layer], track_grad=True)
            gradient = self._gradients(capture, classes, region_mask, [self.target_layer])[self.target_layer]
            sample_map = grad_cam_plus_plus(capture.activations[self.target_layer].detach(), gradient).clamp(min=0)
            total = sample_map if total is None else total + sample_map
            del capture
        return total / self.smooth_samples
