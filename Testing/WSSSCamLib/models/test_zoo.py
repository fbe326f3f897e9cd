"""Every architecture builds for any channel/class count; its CAM layers exist and are spatial."""

import pytest
import torch

from WSSSCamLib.cams.layers import probe_spatial_layers
from WSSSCamLib.models.zoo import CAM_LAYERS, TORCHVISION_2D, build_model


@pytest.mark.parametrize("architecture", [*TORCHVISION_2D, "small-cnn"])
def test_2d_classifiers_take_any_channels_and_name_real_cam_layers(architecture):
    model = build_model(architecture, in_channels=4, num_classes=3).eval()
    size = 128 if architecture == "inception_v3" else 64
    probed, output = probe_spatial_layers(model, torch.rand(1, 4, size, size))
    assert output.shape == (1, 3)
    sizes = {layer.name: layer.spatial_size for layer in probed}
    layers = CAM_LAYERS[architecture]
    for name in layers.fusion:
        assert name in sizes, f"{architecture}: {name} is not a spatial layer"
    areas = [sizes[n][0] * sizes[n][1] for n in layers.fusion]
    assert areas == sorted(areas, reverse=True) and len(set(areas)) == 3  # three stages, shallow to deep
    assert layers.target == layers.fusion[-1]


@pytest.mark.parametrize("architecture", ["monai-resnet10", "monai-densenet121", "small-cnn"])
def test_3d_classifiers(architecture):
    model = build_model(architecture, in_channels=2, num_classes=2, spatial_dims=3).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 2, 32, 32, 32)).shape == (1, 2)


def test_unet_and_errors():
    unet = build_model("monai-unet", 1, 3, spatial_dims=2).eval()
    with torch.no_grad():
        assert unet(torch.rand(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown architecture 'resnet9'"):
        build_model("resnet9", 1, 2)
    with pytest.raises(ValueError, match="2D torchvision network"):
        build_model("resnet18", 1, 2, spatial_dims=3)


def test_dilated_small_cnn_has_a_twice_finer_cam_grid():
    import torch

    from WSSSCamLib.cams import CamEngine

    x = torch.randn(1, 3, 96, 96)
    plain, dilated = build_model("small-cnn", 3, 2).eval(), build_model("small-cnn-dilated", 3, 2).eval()
    with torch.no_grad():
        assert plain.features(x).shape[-2:] == (12, 12) and dilated.features(x).shape[-2:] == (24, 24)
        assert dilated(x).shape == (1, 2)
    raw = CamEngine(dilated)(x, 1, ["grad-cam"], normalize=False, upsample=False).maps["grad-cam"]
    assert raw.shape[-2:] == (24, 24)
