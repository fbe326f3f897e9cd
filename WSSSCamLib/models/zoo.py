"""The model zoo: classifiers and segmentation networks by name, for any channel and class count.

* torchvision 2D classifiers (random initialisation: no weights are downloaded), with the first
  convolution rebuilt for ``in_channels``: resnet18/34/50, densenet121, vgg16/19, inception_v3,
  mobilenet_v2, efficientnet_b0;
* MONAI classifiers, 2D or 3D: ``monai-densenet121``, ``monai-resnet10``, ``monai-resnet18``;
* MONAI U-Net, 2D or 3D, for the Seg- CAM methods: ``monai-unet``;
* ``small-cnn``: the built-in small 2D/3D CNN (four stages of two 3x3 convolutions, 16..128 wide, dropout);
* ``small-cnn-plain``: a plainer one (four single 3x3 convolutions, 32..256 wide, no dropout).

:data:`CAM_LAYERS` gives each classifier's CAM target layer (the deepest feature map before
global pooling) and its Layer-CAM fusion layers (the outputs of the three deepest resolution
stages); model cards record them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .small_cnn import SmallCNN

TORCHVISION_2D = (
    "resnet18",
    "resnet34",
    "resnet50",
    "densenet121",
    "vgg16",
    "vgg19",
    "inception_v3",
    "mobilenet_v2",
    "efficientnet_b0",
)


@dataclass(frozen=True)
class CamLayers:
    """The default CAM target layer and the Layer-CAM fusion layers (shallow to deep)."""

    target: str
    fusion: tuple[str, ...]


CAM_LAYERS: dict[str, CamLayers] = {
    "resnet18": CamLayers("layer4", ("layer2", "layer3", "layer4")),
    "resnet34": CamLayers("layer4", ("layer2", "layer3", "layer4")),
    "resnet50": CamLayers("layer4", ("layer2", "layer3", "layer4")),
    "densenet121": CamLayers("features", ("features.transition2.conv", "features.transition3.conv", "features")),
    "vgg16": CamLayers("features", ("features.22", "features.29", "features")),
    "vgg19": CamLayers("features", ("features.26", "features.35", "features")),
    "inception_v3": CamLayers("Mixed_7c", ("Mixed_5d", "Mixed_6e", "Mixed_7c")),
    "mobilenet_v2": CamLayers("features", ("features.6", "features.13", "features")),
    "efficientnet_b0": CamLayers("features", ("features.3", "features.5", "features")),
    "small-cnn": CamLayers("features", ("features.1", "features.2", "features")),
    "small-cnn-plain": CamLayers("features", ("features.1", "features.2", "features")),
    "small-cnn-dilated": CamLayers("features", ("features.1", "features.2", "features")),
    "monai-resnet10": CamLayers("layer4", ("layer2", "layer3", "layer4")),
    "monai-resnet18": CamLayers("layer4", ("layer2", "layer3", "layer4")),
    "monai-densenet121": CamLayers(
        "class_layers.relu", ("features.transition2", "features.transition3", "class_layers.relu")
    ),
}


def _replace_first_convolution(model: nn.Module, in_channels: int) -> nn.Module:
    """Rebuild the first convolution for ``in_channels`` inputs (same kernel, stride, padding, width)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            if module.in_channels == in_channels:
                return model
            replacement = type(module)(
                in_channels,
                module.out_channels,
                module.kernel_size,
                module.stride,
                module.padding,
                module.dilation,
                module.groups,
                module.bias is not None,
            )
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, replacement)
            return model
    raise ValueError(f"{type(model).__name__} has no convolution to adapt")


def _torchvision(name: str, in_channels: int, num_classes: int) -> nn.Module:
    import torchvision

    options = {"aux_logits": False, "init_weights": True} if name == "inception_v3" else {}
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
    return _replace_first_convolution(model, in_channels)


def _monai(name: str, in_channels: int, num_classes: int, spatial_dims: int) -> nn.Module:
    from monai.networks import nets

    if name == "monai-densenet121":
        return nets.DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes)
    if name in ("monai-resnet10", "monai-resnet18"):
        builder = nets.resnet10 if name == "monai-resnet10" else nets.resnet18
        return builder(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes)
    if name == "monai-unet":
        return nets.UNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=num_classes,
            channels=(16, 32, 64, 128),
            strides=(2, 2, 2),
            num_res_units=1,
        )
    raise KeyError(name)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    **{name: (lambda n: lambda c, k, d: _torchvision(n, c, k))(name) for name in TORCHVISION_2D},
    **{
        name: (lambda n: lambda c, k, d: _monai(n, c, k, d))(name)
        for name in ("monai-densenet121", "monai-resnet10", "monai-resnet18", "monai-unet")
    },
    "small-cnn": lambda c, k, d: SmallCNN(c, k, d, widths=(16, 32, 64, 128), convs_per_stage=2, dropout=0.2),
    "small-cnn-dilated": lambda c, k, d: SmallCNN(
        c, k, d, widths=(16, 32, 64, 128), convs_per_stage=2, dropout=0.2, dilate_last=True
    ),
    "small-cnn-plain": lambda c, k, d: SmallCNN(c, k, d, widths=(32, 64, 128, 256)),
}

SEGMENTATION_ARCHITECTURES = frozenset({"monai-unet"})
"""Architectures with a spatial output (the Seg- CAM methods explain these; every other one is a classifier)."""


def build_model(architecture: str, in_channels: int, num_classes: int, spatial_dims: int = 2) -> nn.Module:
    """A freshly initialised network of ``architecture`` for ``in_channels`` inputs and ``num_classes`` outputs.

    Raises ``ValueError`` for an unknown name or a torchvision (2D-only) architecture asked in 3D.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{architecture}'; known: {', '.join(ARCHITECTURES)}")
    if architecture in TORCHVISION_2D and spatial_dims != 2:
        raise ValueError(
            f"{architecture} is a 2D torchvision network; use monai-densenet121, monai-resnet10/18 or small-cnn in 3D"
        )
    return ARCHITECTURES[architecture](in_channels, num_classes, spatial_dims)
