"""Score-CAM and Faster Score-CAM channel weights (Wang et al. 2020; Syed et al. 2023 eqs. 6-9).

For every sample n and channel k the activation map A^k is upsampled to the input grid,
min-max normalised to [0, 1] and multiplied with the input (eq. 7); the class score of that
masked input is the channel's score, and the weights are the softmax of the scores over the
channels (eq. 8). The map is then ReLU(sum_k w_k A^k) as for the other methods.

Speed: all (sample, channel) pairs of the batch are flattened into one stream of masked inputs
that runs through the model in memory-bounded chunks, in inference mode, on the model's device.
A channel whose activation map is constant yields an all-zero mask and so exactly the score of
an all-zero input: that score is computed once per batch instead of once per such channel.
Masks are upsampled with ``align_corners=True``, as in pytorch-grad-cam's Score-CAM.
"""

from __future__ import annotations

import torch
from torch import nn

from .capture import model_output_tensor
from .postprocess import min_max_normalize, upsample
from .targets import explained_scores


def default_score_chunk_size(x: torch.Tensor) -> int:
    """Masked inputs per forward pass: 16 on the CPU (measured fastest there for ResNet-18 at
    256 x 256), else as many as fit in about 1 GiB of masked inputs, between 16 and 256."""
    if x.device.type == "cpu":
        return 16
    per_input = x[0].numel() * x.element_size()
    return int(min(256, max(16, (1 << 30) // per_input)))


def highest_variance_channels(activations: torch.Tensor, count: int) -> torch.Tensor:
    """Indices (N x count) of the ``count`` channels with the largest spatial variance per sample."""
    variance = activations.flatten(2).var(dim=2, unbiased=False)
    return variance.topk(min(count, activations.shape[1]), dim=1).indices


def _masked_input_scores(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    samples: torch.Tensor,
    classes: torch.Tensor,
    region_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Scores of x[samples] masked by the normalised upsampled ``maps`` (one map per row)."""
    masks = min_max_normalize(upsample(maps, x.shape[2:], align_corners=True))
    logits = model_output_tensor(model(x[samples] * masks.unsqueeze(1)))
    return explained_scores(logits, classes[samples], None if region_mask is None else region_mask[samples])


def score_cam_weights(
    model: nn.Module,
    x: torch.Tensor,
    activations: torch.Tensor,
    classes: torch.Tensor,
    region_mask: torch.Tensor | None = None,
    channels: torch.Tensor | None = None,
    chunk_size: int = 16,
) -> torch.Tensor:
    """Score-CAM weights, N x C.

    ``x``: the input batch (N x C_in x *spatial); ``activations``: N x C x *layer_spatial;
    ``classes``: N target classes; ``region_mask``: N x *output_spatial for segmentation nets;
    ``channels``: N x k channel indices to score (Faster Score-CAM) or None for all; channels not
    scored get weight 0 and the softmax runs over the scored ones. ``chunk_size``: masked inputs
    per forward pass (bounds memory).
    """
    n, c = activations.shape[:2]
    if channels is None:
        channels = torch.arange(c, device=activations.device).expand(n, c)
    k = channels.shape[1]
    selected = torch.gather(
        activations, 1, channels.reshape(n, k, *([1] * (activations.ndim - 2))).expand(-1, -1, *activations.shape[2:])
    )
    rows = selected.flatten(0, 1)
    samples = torch.arange(n, device=activations.device).repeat_interleave(k)
    flat = rows.flatten(1)
    constant = flat.amax(1) == flat.amin(1)
    score_dtype = torch.promote_types(activations.dtype, torch.float32)
    scores = torch.empty(n * k, dtype=score_dtype, device=activations.device)

    with torch.inference_mode():
        if bool(constant.any()):
            zero_logits = model_output_tensor(model(torch.zeros_like(x[:1])))
            zero_scores = explained_scores(zero_logits.expand(n, *zero_logits.shape[1:]), classes, region_mask)
            scores[constant] = zero_scores[samples[constant]].to(score_dtype)
        varying = torch.nonzero(~constant).squeeze(1)
        for start in range(0, varying.numel(), chunk_size):
            chunk = varying[start : start + chunk_size]
            scores[chunk] = _masked_input_scores(model, x, rows[chunk], samples[chunk], classes, region_mask).to(
                score_dtype
            )

    weights = torch.zeros(n, c, dtype=activations.dtype, device=activations.device)
    weights.scatter_(1, channels, torch.softmax(scores.reshape(n, k), dim=1).to(activations.dtype))
    return weights
