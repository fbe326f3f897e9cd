"""Our maps against pytorch-grad-cam 1.5.7 and torchcam 0.5.0 on the same torchvision ResNet-18 and batch.

Compared at the target layer's resolution (8 x 8 here), each map ReLU'd and min-max normalised per
image, because the references normalise *before* resizing while we resize first (both orders are
affine in the map, so the equation is fully checked at the layer grid). Tolerance: 1e-4 absolute
on [0, 1] maps (float32 arithmetic, different summation order; the references' own epsilons of
1e-6..1e-8 in denominators stay below it because the fixture's logits are scaled so that
gradients are of order 1).

Not compared with a library, and why: torchcam's Grad-CAM++ sums A*g3 over space instead of the
paper's (sum A) * g3 (eq. 19) and pytorch-grad-cam has no CAM (Zhou); those are checked against the
hand computations in test_equations.py, as are Layer-CAM fusion, Seg-*, SmoothGrad-CAM++ and
Faster Score-CAM.
"""

import numpy as np
import pytest
import torch
import torchvision

from WSSSCamLib.cams import CamEngine

ATOL = 1e-4
CLASSES = [0, 3, 1]


@pytest.fixture(scope="module")
def resnet_case():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5)
    with torch.no_grad():
        model.fc.weight.mul_(1000.0)  # gradients of order 1: the references' epsilons become negligible
    model.eval()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return model, x


def ours_lowres(model, x, methods, **engine_options):
    result = CamEngine(model, "layer4", **engine_options)(x, CLASSES, methods=methods, upsample=False)
    return {name: m.detach().cpu().numpy() for name, m in result.items()}


def grad_cam_lowres(cam_class, model, x):
    """pytorch-grad-cam's per-image normalised map without its final resize."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with cam_class(model=model, target_layers=[model.layer4]) as cam:
        cam.get_target_width_height = lambda _x: None
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in CLASSES])


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("grad-cam", "GradCAM"),
        ("grad-cam++", "GradCAMPlusPlus"),
        ("hires-cam", "HiResCAM"),
        ("xgrad-cam", "XGradCAM"),
        ("layer-cam", "LayerCAM"),
    ],
)
def test_gradient_methods_match_pytorch_grad_cam(resnet_case, ours, theirs):
    import pytorch_grad_cam

    model, x = resnet_case
    expected = grad_cam_lowres(getattr(pytorch_grad_cam, theirs), model, x)
    np.testing.assert_allclose(ours_lowres(model, x, ours)[ours], expected, atol=ATOL, rtol=0)


def test_score_cam_matches_pytorch_grad_cam(resnet_case):
    from pytorch_grad_cam import ScoreCAM

    model, x = resnet_case
    x = x[:2]
    expected = grad_cam_lowres(ScoreCAM, model, x)
    ours = CamEngine(model, "layer4", score_chunk_size=100)(x, CLASSES[:2], methods="score-cam", upsample=False)[
        "score-cam"
    ]
    np.testing.assert_allclose(ours.numpy(), expected, atol=ATOL, rtol=0)


def test_eigen_cam_matches_pytorch_grad_cam_sign_corrected_projection(resnet_case):
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    model, x = resnet_case
    activations = {}
    handle = model.layer4.register_forward_hook(lambda _m, _i, out: activations.setdefault("a", out.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    projection = np.maximum(get_2d_projection_with_sign_correction(activations["a"].numpy()), 0)
    low = projection.reshape(3, -1).min(1)[:, None, None]
    high = projection.reshape(3, -1).max(1)[:, None, None]
    np.testing.assert_allclose(
        ours_lowres(model, x, "eigen-cam")["eigen-cam"], (projection - low) / (high - low), atol=ATOL, rtol=0
    )


@pytest.mark.parametrize(
    "ours, theirs", [("grad-cam", "GradCAM"), ("xgrad-cam", "XGradCAM"), ("layer-cam", "LayerCAM")]
)
def test_gradient_methods_match_torchcam(resnet_case, ours, theirs):
    import torchcam.methods

    model, x = resnet_case
    with getattr(torchcam.methods, theirs)(model, "layer4") as extractor:
        scores = model(x)
        (raw,) = extractor(class_idx=CLASSES, scores=scores, normalized=False)
    expected = torch.relu(raw.detach())
    low = expected.flatten(1).min(1).values[:, None, None]
    high = expected.flatten(1).max(1).values[:, None, None]
    np.testing.assert_allclose(
        ours_lowres(model, x, ours)[ours], ((expected - low) / (high - low)).numpy(), atol=ATOL, rtol=0
    )


def test_cam_zhou_matches_torchcam(resnet_case):
    from torchcam.methods import CAM

    model, x = resnet_case
    with CAM(model, "layer4", "fc") as extractor:
        with torch.no_grad():
            model(x)
        (raw,) = extractor(class_idx=CLASSES, normalized=False)
    expected = torch.relu(raw)  # torchcam leaves out the final ReLU; DESIGN.md ends every map with it
    low = expected.flatten(1).min(1).values[:, None, None]
    high = expected.flatten(1).max(1).values[:, None, None]
    np.testing.assert_allclose(
        ours_lowres(model, x, "cam")["cam"], ((expected - low) / (high - low)).numpy(), atol=ATOL, rtol=0
    )
