"""Faithfulness of CAMs without masks: deletion/insertion curves and AUC (Petsiuk et al. 2018), average
drop / increase in confidence (Chattopadhay et al. 2018), against hand computations, a naive
per-step loop, and pytorch-grad-cam's confidence-change metric (tolerance 1e-6)."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from WSSSCamLib.cams.faithfulness import confidence_change, faithfulness_scores, perturbation_curves


class SumNet(nn.Module):
    """logits = [0, w * sum of channel 0]: the target-class confidence is sigmoid(w * sum), by hand."""

    def __init__(self, w=0.3):
        super().__init__()
        self.w = w

    def forward(self, x):
        s = self.w * x[:, 0].flatten(1).sum(1)
        return torch.stack([torch.zeros_like(s), s], dim=1)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


IMAGE = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
MAP = torch.tensor([[[0.1, 0.9], [0.5, 0.3]]], dtype=torch.float64)  # order: 2, 3, 4, 1


def test_deletion_by_hand():
    result = perturbation_curves(SumNet(), IMAGE, MAP, 1, "deletion", steps=4)
    expected = [sigmoid(0.3 * s) for s in (10, 8, 5, 1, 0)]
    np.testing.assert_allclose(result.curves[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(result.fractions.numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    assert float(result.auc[0]) == pytest.approx(np.trapezoid(expected, [0, 0.25, 0.5, 0.75, 1.0]), abs=1e-6)
    minimum = perturbation_curves(SumNet(), IMAGE, MAP, 1, "deletion", steps=4, baseline="minimum")
    np.testing.assert_allclose(minimum.curves[0].numpy(), [sigmoid(0.3 * s) for s in (10, 9, 7, 4, 4)], atol=1e-6)


def test_deletion_and_explanation_towards_the_blurred_image_by_hand():
    blurred = gaussian_filter(IMAGE[0, 0].numpy(), sigma=5.0, mode="nearest", truncate=1.0)
    current = IMAGE[0, 0].numpy().copy()
    expected = [sigmoid(0.3 * current.sum())]
    for i, j in [(0, 1), (1, 0), (1, 1), (0, 0)]:  # decreasing map value
        current[i, j] = blurred[i, j]
        expected.append(sigmoid(0.3 * current.sum()))
    result = perturbation_curves(SumNet(), IMAGE, MAP, 1, "deletion", steps=4, baseline="blur")
    np.testing.assert_allclose(result.curves[0].numpy(), expected, atol=1e-6)
    explained = blurred + MAP[0].numpy() * (IMAGE[0, 0].numpy() - blurred)
    change = confidence_change(SumNet(), IMAGE, MAP, 1, baseline="blur")
    assert float(change.explained[0]) == pytest.approx(sigmoid(0.3 * explained.sum()))


def test_insertion_by_hand_from_a_blurred_image():
    blurred = gaussian_filter(IMAGE[0, 0].numpy(), sigma=5.0, mode="nearest", truncate=1.0)  # kernel 11 = 2 * 5 + 1
    order = [(0, 1), (1, 0), (1, 1), (0, 0)]
    current = blurred.copy()
    expected = [sigmoid(0.3 * current.sum())]
    for i, j in order:
        current[i, j] = IMAGE[0, 0, i, j].item()
        expected.append(sigmoid(0.3 * current.sum()))
    result = perturbation_curves(SumNet(), IMAGE, MAP, 1, "insertion", steps=4)
    np.testing.assert_allclose(result.curves[0].numpy(), expected, atol=1e-6)


def test_average_drop_and_increase_by_hand():
    change = confidence_change(SumNet(), IMAGE, MAP, 1)
    full, kept = sigmoid(0.3 * 10), sigmoid(0.3 * (0.1 * 1 + 0.9 * 2 + 0.5 * 3 + 0.3 * 4))
    assert float(change.full[0]) == pytest.approx(full) and float(change.explained[0]) == pytest.approx(kept)
    assert float(change.drop[0]) == pytest.approx((full - kept) / full) and not bool(change.increase[0])
    negative = confidence_change(SumNet(-0.3), IMAGE, MAP, 1)  # less signal raises this class's confidence
    assert bool(negative.increase[0]) and float(negative.drop[0]) == 0.0


def naive_curve(model, image, cam, target, mode, steps, start):
    """Each step built by hand: the pixels sorted by decreasing map value (stable), the first ceil(k P / S) changed."""
    pixels = cam.numel()
    order = sorted(range(pixels), key=lambda p: (-float(cam.flatten()[p]), p))
    values = []
    for k in range(steps + 1):
        changed = torch.zeros(pixels, dtype=torch.bool)
        changed[order[: math.ceil(k * pixels / steps)]] = True
        changed = changed.view(cam.shape)
        x = torch.where(changed, start, image) if mode == "deletion" else torch.where(changed, image, start)
        with torch.no_grad():
            values.append(torch.softmax(model(x[None]), 1)[0, target].item())
    return values


@pytest.mark.parametrize("spatial", [2, 3])
def test_curves_equal_a_naive_loop_on_a_small_cnn(spatial):
    torch.manual_seed(0)
    conv, pool = (nn.Conv2d, nn.AdaptiveAvgPool2d) if spatial == 2 else (nn.Conv3d, nn.AdaptiveAvgPool3d)
    model = nn.Sequential(conv(2, 4, 3, padding=1), nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    shape = (5, 7) if spatial == 2 else (3, 4, 5)
    images = torch.randn(3, 2, *shape)
    maps = torch.rand(3, *shape)
    maps[0].flatten()[:4] = 0.5  # ties are taken in pixel order
    targets = [0, 2, 1]
    for mode in ("deletion", "insertion"):
        result = perturbation_curves(model, images, maps, targets, mode, steps=6, chunk=5)
        for n in range(3):
            if mode == "deletion":
                start = torch.zeros_like(images[n])
            else:  # RISE's blur, by scipy: sigma 5 px over the spatial axes, kernel 11 (truncate 1.0), edges repeated
                sigma = (0.0,) + (5.0,) * spatial
                start = torch.from_numpy(
                    gaussian_filter(images[n].double().numpy(), sigma=sigma, mode="nearest", truncate=1.0)
                ).float()
            np.testing.assert_allclose(
                result.curves[n].numpy(), naive_curve(model, images[n], maps[n], targets[n], mode, 6, start), atol=1e-6
            )


def test_confidence_change_equals_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange, DropInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)
    ).eval()
    images = torch.randn(4, 3, 8, 8)
    maps = torch.rand(4, 8, 8)
    targets = [1, 0, 1, 1]
    ours = confidence_change(model, images, maps, targets)
    references = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    theirs = CamMultImageConfidenceChange()(images, maps.numpy(), references, model)
    np.testing.assert_allclose((ours.explained - ours.full).numpy(), np.asarray(theirs).reshape(-1), atol=1e-6)
    drop = DropInConfidence()(images, maps.numpy(), references, model)
    np.testing.assert_allclose((ours.drop * ours.full).numpy(), np.asarray(drop).reshape(-1), atol=1e-6)


def test_scores_and_errors():
    scores = faithfulness_scores(SumNet(), IMAGE, MAP, 1, steps=4)
    assert set(scores) == {"confidence", "deletion_auc", "insertion_auc", "drop", "increase"} and all(
        v.shape == (1,) for v in scores.values()
    )
    minimum = faithfulness_scores(SumNet(), IMAGE, MAP, 1, steps=4, baseline="minimum")
    change = confidence_change(SumNet(), IMAGE, MAP, 1)  # the explanation stays the paper's x * L
    assert float(minimum["drop"][0]) == pytest.approx(float(change.drop[0]))
    deleted = perturbation_curves(SumNet(), IMAGE, MAP, 1, "deletion", steps=4, baseline="minimum")
    assert float(minimum["deletion_auc"][0]) == pytest.approx(float(deleted.auc[0]))
    assert float(minimum["deletion_auc"][0]) != pytest.approx(float(scores["deletion_auc"][0]))
    with pytest.raises(ValueError, match="baseline: 'mean' is not one of zero, minimum, blur"):
        confidence_change(SumNet(), IMAGE, MAP, 1, baseline="mean")
    with pytest.raises(ValueError, match="mode: 'removal'"):
        perturbation_curves(SumNet(), IMAGE, MAP, 1, "removal")
    with pytest.raises(ValueError, match="steps: must be >= 1"):
        perturbation_curves(SumNet(), IMAGE, MAP, 1, steps=0)
    with pytest.raises(ValueError, match="targets must be one integer class per image"):
        perturbation_curves(SumNet(), IMAGE, MAP, 1.5)
    with pytest.raises(ValueError, match="maps must be N x \\*spatial"):
        confidence_change(SumNet(), IMAGE, MAP[:, :1], 1)
    with pytest.raises(ValueError, match="must be finite"):
        confidence_change(SumNet(), IMAGE * float("nan"), MAP, 1)


def test_curves_equal_pytorch_grad_cam_perturbations():
    """Each step of our deletion (zero baseline) and insertion curves equals pytorch-grad-cam's
    ``PerturbationConfidenceMetric`` with ``RemoveMostRelevantFirst`` / ``RemoveLeastRelevantFirst`` at the
    percentile that removes (keeps) exactly our ceil(k P / S) most salient pixels (distinct map values, no
    ties), tolerance 1e-6; the insertion imputer blends towards our blurred image (the blur itself is
    checked against scipy above). Their metric has no AUC; ours is the trapezoid over the same steps."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric,
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    from WSSSCamLib.cams.faithfulness import _gaussian_blur

    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2)
    ).eval()
    images = torch.randn(3, 2, 6, 6)
    maps = torch.randperm(3 * 36).view(3, 6, 6).float() / 107  # distinct values in [0, 1]
    targets = [1, 0, 1]
    steps, pixels = 4, 36
    references = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    blurred = _gaussian_blur(images, 5.0, 11)
    ours = {mode: perturbation_curves(model, images, maps, targets, mode, steps) for mode in ("deletion", "insertion")}
    for k in range(1, steps + 1):
        changed = math.ceil(k * pixels / steps)
        percentile = 100 * (pixels - changed) / (pixels - 1)  # np.percentile's threshold = the changed-th largest value
        deleted = PerturbationConfidenceMetric(RemoveMostRelevantFirst(percentile, lambda x, keep: x * keep))(
            images, maps.numpy(), references, model, return_diff=False
        )
        np.testing.assert_allclose(ours["deletion"].curves[:, k].numpy(), np.asarray(deleted).reshape(-1), atol=1e-6)
        if changed == pixels:  # all inserted: the image itself (no percentile keeps every pixel)
            with torch.no_grad():
                full = torch.softmax(model(images), 1)[torch.arange(3), targets]
            np.testing.assert_allclose(ours["insertion"].curves[:, k].numpy(), full.numpy(), atol=1e-6)
            continue
        kept = 100 * changed / (pixels - 1)  # on 1 - map: the `changed` most salient pixels lie below it
        for n in range(3):  # insertion: keep the `changed` most salient pixels of image n, the rest blurred
            inserted = PerturbationConfidenceMetric(
                RemoveLeastRelevantFirst(kept, lambda x, keep, n=n: keep * x + (1 - keep) * blurred[n])
            )(images[n : n + 1], maps[n : n + 1].numpy(), references[n : n + 1], model, return_diff=False)
            theirs = float(np.asarray(inserted).reshape(-1)[0])
            assert float(ours["insertion"].curves[n, k]) == pytest.approx(theirs, abs=1e-6)
