"""Gradient CAM methods: one function per method, from (A, g) at one layer to the map before ReLU.

Conventions for every function here:

* ``activations`` A and ``gradients`` g = dY^c/dA have the same shape, N x C x H x W (2D) or
  N x C x D x H x W (3D), on any device and float dtype;
* sums and means "over space" run over all axes after the channel axis;
* the result is the N x H x W (or N x D x H x W) map *before* the final ReLU, at the layer's
  resolution; :mod:`WSSSCamLib.cams.postprocess` applies ReLU, upsampling and normalisation.

A division whose denominator is exactly zero yields zero, never NaN.
"""

from __future__ import annotations

import torch


def _spatial_axes(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, tensor.ndim))


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    nonzero = denominator != 0
    return torch.where(nonzero, numerator / torch.where(nonzero, denominator, torch.ones_like(denominator)), 0.0)


def weighted_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A^k for per-channel weights ``weights`` (N x C): the map N x *spatial."""
    view = weights.shape + (1,) * (activations.ndim - 2)
    return (weights.reshape(view) * activations).sum(dim=1)


def grad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al.): alpha_k = mean over space of g^k; map = sum_k alpha_k A^k."""
    return weighted_sum(gradients.mean(dim=_spatial_axes(gradients)), activations)


def hires_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """HiResCAM (Draelos & Carin): map = sum_k g^k * A^k, element-wise (no spatial averaging).

    With a segmentation target this is Seg-HiRes-Grad-CAM (Rheude et al. 2024).
    """
    return (gradients * activations).sum(dim=1)


def grad_cam_plus_plus(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al., eq. 19, exponential-output closed form).

    alpha_k^{ij} = g2 / (2 g2 + (sum_{ab} A^k_{ab}) g3) with g2 = (g^k_{ij})^2, g3 = (g^k_{ij})^3;
    alpha is 0 where g is 0; w_k = sum_{ij} alpha_k^{ij} ReLU(g^k_{ij}); map = sum_k w_k A^k.
    """
    axes = _spatial_axes(gradients)
    g2 = gradients.pow(2)
    g3 = g2 * gradients
    activation_sums = activations.sum(dim=axes, keepdim=True)
    alpha = _safe_divide(g2, 2 * g2 + activation_sums * g3)
    alpha = torch.where(gradients != 0, alpha, 0.0)
    weights = (alpha * gradients.clamp(min=0)).sum(dim=axes)
    return weighted_sum(weights, activations)


def xgrad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM (Fu et al.): w_k = sum_{ij} (A^k_{ij} / sum_{ab} A^k_{ab}) g^k_{ij}; map = sum_k w_k A^k."""
    axes = _spatial_axes(gradients)
    activation_sums = activations.sum(dim=axes, keepdim=True)
    weights = _safe_divide(activations * gradients, activation_sums).sum(dim=axes)
    return weighted_sum(weights, activations)


def layer_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Layer-CAM (Jiang et al.) at one layer: map = sum_k ReLU(g^k) * A^k (Syed et al. 2023 eqs. 10-12)."""
    return (gradients.clamp(min=0) * activations).sum(dim=1)
