"""Every CAM method against a hand computation of its equation, on tiny float64 networks, 2D and 3D.

Tolerance: 1e-9 absolute in float64 (the two sides differ only by floating-point summation order).
"""

import cam_reference as ref
import pytest
import torch

from WSSSCamLib.cams import CamEngine, Region

ATOL = 1e-9
GRADIENT = {
    "grad-cam": ref.grad_cam,
    "grad-cam++": ref.grad_cam_pp,
    "hires-cam": ref.hires_cam,
    "xgrad-cam": ref.xgrad_cam,
    "layer-cam": ref.layer_cam,
}


def close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def classifier_case(request):
    dims = request.param
    model = ref.TinyClassifier(spatial_dims=dims)
    generator = torch.Generator().manual_seed(dims)
    x = torch.rand((3, 1) + (10,) * dims, generator=generator, dtype=torch.float64)
    classes = torch.tensor([0, 2, 1])
    return model, x, classes


def test_gradient_methods_raw_maps_equal_the_equations(classifier_case):
    model, x, classes = classifier_case
    result = CamEngine(model, "features")(x, classes, methods=list(GRADIENT), normalize=False, upsample=False)
    a, g, _ = ref.activations_and_gradients(model.features, model.head, x, classes)
    for name, equation in GRADIENT.items():
        close(result[name], equation(a, g))


def test_maps_are_upsampled_then_min_max_normalised(classifier_case):
    model, x, classes = classifier_case
    result = CamEngine(model, "features")(x, classes, methods=list(GRADIENT))
    a, g, _ = ref.activations_and_gradients(model.features, model.head, x, classes)
    for name, equation in GRADIENT.items():
        expected = ref.normalise(ref.resize(equation(a, g), x.shape[2:]))
        close(result[name], expected)
        assert result[name].shape == (x.shape[0],) + x.shape[2:]


def test_cam_zhou_uses_the_final_linear_weights(classifier_case):
    model, x, classes = classifier_case
    result = CamEngine(model, "features")(x, classes, methods="cam", normalize=False, upsample=False)
    a = model.features(x).detach()
    close(result["cam"], ref.zhou_cam(a, model.head[2].weight.detach(), classes))


def test_eigen_cam_is_the_sign_fixed_first_principal_component(classifier_case):
    model, x, classes = classifier_case
    result = CamEngine(model, "features")(x, classes, methods="eigen-cam", normalize=False, upsample=False)
    close(result["eigen-cam"], ref.eigen_cam(model.features(x).detach()))


def test_score_cam_and_faster_score_cam_follow_eqs_6_to_9(classifier_case):
    model, x, classes = classifier_case
    engine = CamEngine(model, "features", score_chunk_size=5, faster_score_channels=3)
    result = engine(x, classes, methods=["score-cam", "faster-score-cam"], normalize=False, upsample=False)
    a = model.features(x).detach()
    close(result["score-cam"], ref.score_cam(model, x, a, classes))
    variance = a.flatten(2).var(dim=2, unbiased=False)
    top = variance.topk(3, dim=1).indices
    close(result["faster-score-cam"], ref.score_cam(model, x, a, classes, channels=top))


def test_score_cam_shares_the_score_of_constant_channels():
    """A channel with a constant map masks the input to zero: its score is that of a zero input."""
    model = ref.TinyClassifier(spatial_dims=2)
    with torch.no_grad():
        model.features[2].bias[:3] = -100.0  # channels 0-2 are ReLU(negative) = 0 everywhere
    x = torch.rand(2, 1, 10, 10, dtype=torch.float64)
    classes = torch.tensor([1, 0])
    result = CamEngine(model, "features", score_chunk_size=2)(
        x, classes, methods="score-cam", normalize=False, upsample=False
    )
    a = model.features(x).detach()
    assert (a[:, :3] == 0).all()
    close(result["score-cam"], ref.score_cam(model, x, a, classes))


def test_smoothgrad_cam_pp_averages_grad_cam_pp_over_seeded_noisy_copies(classifier_case):
    model, x, classes = classifier_case
    engine = CamEngine(model, "features", smooth_samples=3, smooth_noise=0.2, seed=7)
    result = engine(x, classes, methods="smoothgrad-cam++", normalize=False, upsample=False)
    generator = torch.Generator().manual_seed(7)
    spread = (x.flatten(1).max(1).values - x.flatten(1).min(1).values).reshape(-1, *([1] * (x.ndim - 1)))
    maps = []
    for _ in range(3):
        noisy = x + torch.randn(x.shape, generator=generator, dtype=x.dtype) * 0.2 * spread
        a, g, _ = ref.activations_and_gradients(model.features, model.head, noisy, classes)
        maps.append(ref.grad_cam_pp(a, g))
    close(result["smoothgrad-cam++"], sum(maps) / 3)


def test_layer_cam_fusion_follows_eq_13(classifier_case):
    model, x, classes = classifier_case
    engine = CamEngine(model, "features", fusion_layers=["features.1", "features"], gamma=2.0)
    result = engine(x, classes, methods="layer-cam-fused", normalize=False)
    shallow = model.features[:2](x).detach().requires_grad_(True)
    deep = model.features[2:](shallow)
    logits = model.head(deep)
    g_shallow, g_deep = torch.autograd.grad(logits[torch.arange(3), classes].sum(), [shallow, deep])
    maps = [ref.layer_cam(shallow.detach(), g_shallow), ref.layer_cam(deep.detach(), g_deep)]
    close(result["layer-cam-fused"], ref.fuse(maps, x.shape[2:], gamma=2.0))


REGIONS = {
    "mask": lambda shape: Region.from_mask(torch.arange(torch.Size(shape).numel()).reshape(shape) % 3 == 0),
    "box": lambda shape: Region.from_box([1] * len(shape), [5] * len(shape)),
    "point": lambda shape: Region.from_point([3] * len(shape)),
    "predicted": lambda shape: Region.predicted(),
    "everything": lambda shape: Region.everything(),
}


def hand_region(kind, logits, classes):
    shape = tuple(logits.shape[2:])
    n = logits.shape[0]
    if kind == "mask":
        return (torch.arange(torch.Size(shape).numel()).reshape(shape) % 3 == 0).expand(n, *shape).double()
    if kind == "predicted":
        return (logits.argmax(1) == classes.reshape(-1, *([1] * len(shape)))).double()
    region = torch.zeros((n,) + shape, dtype=torch.float64)
    if kind == "everything":
        region[:] = 1
    elif kind == "box":
        region[(slice(None),) + (slice(1, 5),) * len(shape)] = 1
    else:
        region[(slice(None),) + (3,) * len(shape)] = 1
    return region


@pytest.mark.parametrize("dims", [2, 3], ids=["2d", "3d"])
@pytest.mark.parametrize("kind", list(REGIONS))
def test_seg_grad_cam_targets_the_logits_summed_over_the_region(dims, kind):
    model = ref.TinySegmenter(spatial_dims=dims)
    x = torch.rand((2, 1) + (8,) * dims, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    classes = torch.tensor([1, 2])
    region = REGIONS[kind]((8,) * dims)
    result = CamEngine(model, "bottleneck")(
        x, classes, methods=["seg-grad-cam", "seg-hires-grad-cam"], region=region, normalize=False, upsample=False
    )
    with torch.no_grad():
        logits = model(x)
    mask = hand_region(kind, logits, classes)
    features = lambda inp: model.bottleneck(model.encoder(inp))  # noqa: E731
    a, g, _ = ref.activations_and_gradients(features, model.decoder, x, classes, region=mask)
    close(result["seg-grad-cam"], ref.grad_cam(a, g))
    close(result["seg-hires-grad-cam"], ref.hires_cam(a, g))


@pytest.mark.parametrize("positions", [(3, 3), (6, 6)])
def test_eigen_cam_with_fewer_or_more_positions_than_channels(positions):
    """The P x P Gram route (P < C) and the C x C scatter route give the reference projection."""
    from WSSSCamLib.cams.activation_maps import eigen_cam

    activations = torch.randn(3, 20, *positions, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    close(torch.relu(eigen_cam(activations)), ref.eigen_cam(activations))  # the reference includes the ReLU
