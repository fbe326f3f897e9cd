"""Classification metrics on tensors: ROC AUC (Mann-Whitney, ties counted half) and accuracy."""

from __future__ import annotations

import torch


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` (N, higher = positive) for binary ``labels`` (N).

    Equals the probability that a random positive scores above a random negative (ties 1/2).
    Returns NaN when one class is absent.
    """
    scores = scores.detach().double().flatten().cpu()
    labels = labels.detach().flatten().cpu().bool()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = scores.argsort()
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # average ranks over ties
    unique, inverse = torch.unique(sorted_scores, return_inverse=True)
    sums = torch.zeros(len(unique), dtype=torch.float64).index_add_(
        0, inverse, torch.arange(1, len(scores) + 1, dtype=torch.float64)
    )
    counts = torch.zeros(len(unique), dtype=torch.float64).index_add_(
        0, inverse, torch.ones(len(scores), dtype=torch.float64)
    )
    ranks[order] = (sums / counts)[inverse]
    u = float(ranks[labels].sum()) - positives * (positives + 1) / 2
    return u / (positives * negatives)


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of equal entries."""
    return float((predicted.flatten().cpu() == labels.flatten().cpu()).double().mean())
