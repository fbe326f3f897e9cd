"""Gradient-free CAM methods computed from the activations alone (plus the classifier's weights).

Shapes as in :mod:`WSSSCamLib.cams.gradient_maps`: activations N x C x *spatial in, the map
N x *spatial before ReLU out.
"""

from __future__ import annotations

import torch

from .gradient_maps import weighted_sum


def class_activation_map(
    activations: torch.Tensor, classifier_weight: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """CAM (Zhou et al. 2016): map = sum_k w_k^c A^k with w^c the row of the final linear layer.

    ``classifier_weight`` is K x C (classes x channels), ``classes`` the N target classes.
    """
    weights = classifier_weight.to(device=activations.device, dtype=activations.dtype)[classes]
    return weighted_sum(weights, activations)


def eigen_cam(activations: torch.Tensor) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin): projection on the first principal component of the activations.

    Per sample, the activations are read as P positions x C channels, centred over positions, and
    projected on the leading right singular vector (the top eigenvector of the C x C scatter
    matrix, computed in float64; with fewer positions than channels the same projection comes from
    the P x P Gram matrix: sqrt(lambda_1) u_1). SVD leaves the sign free; it is fixed so that the largest
    absolute value of the projection is positive (Seg-Eigen-CAM, Chung & Ying 2025, eq. 13).
    """
    n, c = activations.shape[:2]
    spatial = activations.shape[2:]
    positions = activations.reshape(n, c, -1).transpose(1, 2).to(torch.float64)
    centred = positions - positions.mean(dim=1, keepdim=True)
    if centred.shape[1] < c:
        eigenvalues, eigenvectors = torch.linalg.eigh(centred @ centred.transpose(1, 2))
        projection = eigenvectors[:, :, -1] * eigenvalues[:, -1:].clamp(min=0).sqrt()
    else:
        _, eigenvectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)
        projection = (centred @ eigenvectors[:, :, -1:]).squeeze(-1)
    flip = projection.amin(dim=1).abs() > projection.amax(dim=1).abs()
    projection = torch.where(flip[:, None], -projection, projection)
    return projection.reshape(n, *spatial).to(activations.dtype)
