"""Behaviour of the engine: batches, defaults, devices of results, cleanup and clear errors."""

import gc

import cam_reference as ref
import pytest
import torch
import torchvision

from WSSSCamLib.cams import METHODS, CamEngine, Region

CLASSIFIER_METHODS = [name for name, m in METHODS.items() if not m.segmentation]


def tiny(dims=2):
    return ref.TinyClassifier(spatial_dims=dims).float()


def test_mixed_target_batch_equals_one_call_per_sample():
    model = tiny()
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    classes = [2, 0, 1, 2]
    methods = ["cam", "grad-cam", "grad-cam++", "hires-cam", "xgrad-cam", "layer-cam", "score-cam", "eigen-cam"]
    batch = CamEngine(model, "features")(x, classes, methods=methods)
    for n, c in enumerate(classes):
        single = CamEngine(model, "features")(x[n : n + 1], c, methods=methods)
        for name in methods:
            torch.testing.assert_close(batch[name][n], single[name][0], atol=1e-5, rtol=0)


def test_without_target_the_predicted_class_is_explained():
    model = tiny()
    x = torch.rand(3, 1, 12, 12)
    result = CamEngine(model, "features")(x, None, methods="grad-cam")
    torch.testing.assert_close(result.classes, model(x).argmax(1))
    explicit = CamEngine(model, "features")(x, result.classes.tolist(), methods="grad-cam")
    torch.testing.assert_close(result["grad-cam"], explicit["grad-cam"])


@pytest.mark.parametrize("dims", [2, 3], ids=["2d", "3d"])
def test_constant_input_gives_finite_maps_in_unit_range(dims):
    model = tiny(dims)
    for value in (0.0, 1.0):
        x = torch.full((2, 1) + (8,) * dims, value)
        result = CamEngine(model, "features", fusion_layers=["features.1", "features"], smooth_samples=2)(
            x, 1, methods=CLASSIFIER_METHODS
        )
        for name, cam in result.items():
            assert torch.isfinite(cam).all(), name
            assert cam.min() >= 0 and cam.max() <= 1, name


def test_a_constant_map_normalises_to_zeros_not_nan():
    model = tiny()
    with torch.no_grad():
        model.features[2].bias.fill_(-1e3)  # every activation at the target is ReLU(negative) = 0
    result = CamEngine(model, "features")(torch.rand(2, 1, 8, 8), 0, methods=["grad-cam", "eigen-cam", "score-cam"])
    for cam in result.values():
        assert torch.equal(cam, torch.zeros_like(cam))


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_hooks_removed_and_state_restored_after_success_and_errors():
    model = tiny()
    x = torch.rand(2, 1, 8, 8)
    engine = CamEngine(model, "features")
    engine(x, 1, methods=CLASSIFIER_METHODS)
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="out of range"):
        engine(x, 7, methods="grad-cam")  # raised after the hooked forward pass
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="outputs"):
        CamEngine(model, "head.1")(x, 0, methods="grad-cam")  # raised inside a hook
    assert hook_count(model) == 0
    with torch.no_grad():
        engine(x, 1, methods="grad-cam")
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad


def test_backward_runs_only_through_layers_after_the_target():
    model = torchvision.models.resnet18(num_classes=3).eval()
    fired = []
    handles = [
        getattr(model, name).register_full_backward_hook(lambda *_a, name=name: fired.append(name))
        for name in ("layer1", "layer3", "fc")
    ]
    try:
        CamEngine(model, "layer4")(
            torch.rand(2, 3, 64, 64), 1, methods=["grad-cam", "grad-cam++", "hires-cam", "xgrad-cam", "layer-cam"]
        )
    finally:
        for handle in handles:
            handle.remove()
    assert fired == ["fc"]  # the head runs backward once for all five methods; layer1-3 never


def test_repeated_calls_keep_no_tensors_alive():
    model = tiny()
    engine = CamEngine(model, "features")
    x = torch.rand(2, 1, 8, 8)

    def live_tensors():
        gc.collect()
        return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))

    engine(x, 1, methods=CLASSIFIER_METHODS)  # warm-up: lazy state of torch itself
    before = live_tensors()
    for _ in range(5):
        result = engine(x, 1, methods=CLASSIFIER_METHODS)
        del result
    assert live_tensors() == before
    assert hook_count(model) == 0


def test_maps_live_on_the_model_device_and_dtype():
    model = tiny()
    result = CamEngine(model, "features")(torch.rand(1, 1, 8, 8, dtype=torch.float64).float(), 0, methods="grad-cam")
    assert result["grad-cam"].device == next(model.parameters()).device
    assert result["grad-cam"].dtype == torch.float32


def test_inplace_activation_after_the_target_layer_does_not_corrupt_maps():
    """VGG-style Conv -> ReLU(inplace=True): the target conv's output must be kept as it was."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(inplace=True),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    ).eval()
    x = torch.randn(2, 1, 8, 8)
    result = CamEngine(model, "0")(x, 1, methods="hires-cam", normalize=False, upsample=False)
    a = model[0](x).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model[2:](torch.relu(a))[:, 1].sum(), a)
    torch.testing.assert_close(result["hires-cam"], torch.relu((g * a).sum(1)))


@pytest.mark.parametrize(
    "builder, size, expected",
    [
        (lambda: torchvision.models.resnet18(num_classes=2), 64, "layer4"),
        (lambda: torchvision.models.densenet121(num_classes=2), 64, "features"),
        (lambda: torchvision.models.vgg11(num_classes=2), 64, "features"),
        (lambda: torchvision.models.mobilenet_v2(num_classes=2), 64, "features"),
        (lambda: torchvision.models.efficientnet_b0(num_classes=2), 64, "features"),
        (lambda: torchvision.models.inception_v3(num_classes=2, aux_logits=False, init_weights=False), 128, "Mixed_7c"),
    ],
    ids=["resnet18", "densenet121", "vgg11", "mobilenet_v2", "efficientnet_b0", "inception_v3"],
)
def test_default_target_layer_of_torchvision_classifiers(builder, size, expected):
    model = builder().eval()
    engine = CamEngine(model)
    result = engine(torch.rand(2, 3, size, size), [0, 1], methods=["grad-cam", "layer-cam"])
    assert engine.target_layer == expected
    assert result["grad-cam"].shape == (2, size, size)


def test_resnet_default_fusion_layers_are_the_three_deepest_stages():
    engine = CamEngine(torchvision.models.resnet18(num_classes=2).eval())
    engine(torch.rand(1, 3, 64, 64), 0, methods="layer-cam-fused")
    assert engine.fusion_layers == ["layer2", "layer3", "layer4"]


def test_monai_3d_classifier_all_methods():
    from monai.networks.nets import resnet10

    torch.manual_seed(0)
    model = resnet10(spatial_dims=3, n_input_channels=1, num_classes=2).eval()
    x = torch.rand(2, 1, 32, 32, 32)
    engine = CamEngine(model, faster_score_channels=4, smooth_samples=2, score_chunk_size=32)
    methods = [m for m in CLASSIFIER_METHODS if m != "score-cam"]  # 512 masked 3D forwards: covered by faster-score-cam
    result = engine(x, [0, 1], methods=methods)
    assert engine.target_layer == "layer4"
    for name in methods:
        assert result[name].shape == (2, 32, 32, 32), name
        assert torch.isfinite(result[name]).all(), name


def test_monai_unet_seg_grad_cam_defaults_to_the_bottleneck():
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    model = UNet(spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8, 16), strides=(2, 2)).eval()
    engine = CamEngine(model)
    result = engine(
        torch.rand(2, 1, 32, 32),
        1,
        methods=["seg-grad-cam", "seg-hires-grad-cam"],
        region=Region.from_box((8, 8), (20, 20)),
    )
    probe_sizes = {}

    def record(name):
        def hook(_module, _inputs, output):
            probe_sizes.setdefault(name, tuple(output.shape[2:]))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        model(torch.rand(1, 1, 32, 32))
    for h in handles:
        h.remove()
    assert probe_sizes[engine.target_layer] == min(probe_sizes.values(), key=lambda s: s[0] * s[1])
    assert result["seg-grad-cam"].shape == (2, 32, 32)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x: CamEngine(m, "featurez"), "does not exist.*did you mean"),
        (lambda m, x: CamEngine(m, "head.2")(x, 0), r"outputs \(2, 3\); CAM methods need spatial"),
        (lambda m, x: CamEngine(m, "features")(x, 3), "class 3 is out of range: the model has 3 classes"),
        (lambda m, x: CamEngine(m, "features")(x, [0, 1, 2]), "3 target classes for a batch of 2"),
        (lambda m, x: CamEngine(m, "features")(x[:, :, None], 0), "rank 5, but TinyClassifier starts with a Conv2d"),
        (lambda m, x: CamEngine(m, "features")(x.repeat(1, 3, 1, 1), 0), "has 3 channels, but the first convolution"),
        (lambda m, x: CamEngine(m, "features")(x, 0, methods="grad-camm"), "unknown CAM method 'grad-camm'"),
        (lambda m, x: CamEngine(m, "features")(x, 0, methods="seg-grad-cam"), "explain segmentation networks"),
        (lambda m, x: CamEngine(m, "features")(x, 0, region=Region.everything()), "Region applies to segmentation"),
    ],
    ids=[
        "unknown-layer",
        "non-spatial-layer",
        "class-range",
        "target-count",
        "input-rank",
        "input-channels",
        "unknown-method",
        "seg-on-classifier",
        "region-on-classifier",
    ],
)
def test_clear_errors(call, message):
    model = tiny()
    with pytest.raises(ValueError, match=message):
        call(model, torch.rand(2, 1, 8, 8))
    assert hook_count(model) == 0


def test_cam_zhou_refuses_a_head_without_global_pooling():
    model = torchvision.models.vgg11(num_classes=2).eval()
    with pytest.raises(ValueError, match="global pooling followed by one linear layer"):
        CamEngine(model, "features")(torch.rand(1, 3, 32, 32), 0, methods="cam")


def test_method_names_are_forgiving():
    model = tiny()
    result = CamEngine(model, "features")(torch.rand(1, 1, 8, 8), 0, methods=["GradCAM++", "grad_cam", "Layer CAM"])
    assert list(result) == ["grad-cam++", "grad-cam", "layer-cam"]
    assert result["gradcampp"] is result["grad-cam++"]
