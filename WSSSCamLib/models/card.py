"""The model card: what a trained network is, what it expects, how it was trained and how well it did.

Saved as JSON beside every checkpoint (:mod:`WSSSCamLib.training.checkpoint`), read by everything
that uses a trained network (inference, the study, ``wssscam predict``, the Slicer panel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .zoo import CAM_LAYERS, SEGMENTATION_ARCHITECTURES


@dataclass
class ModelCard:
    """Everything needed to rebuild, feed and judge a trained network."""

    architecture: str
    in_channels: int
    num_classes: int
    class_names: list[str]
    channel_names: list[str]
    spatial_dims: int = 2
    input_size: list[int] = field(default_factory=list)
    spacing_mm: list[float] = field(default_factory=list)
    slice_axis: str = "K"
    normalisation: str = ""
    recipe: dict = field(default_factory=dict)
    target_layer: str = ""
    fusion_layers: list[str] = field(default_factory=list)
    split: dict = field(default_factory=dict)
    data_fingerprint: str = ""
    training: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers = CAM_LAYERS.get(self.architecture)
        if layers and not self.target_layer:
            self.target_layer = layers.target
            self.fusion_layers = list(layers.fusion)

    @property
    def is_segmentation(self) -> bool:
        """Whether the network is a segmentation network (a spatial output, e.g. ``monai-unet``), not a classifier."""
        return self.architecture in SEGMENTATION_ARCHITECTURES

    @property
    def is_stack_segmentation(self) -> bool:
        """Whether it is a 3D segmentation network over a slice recipe's stack of slices (the study's
        ``dims: 3`` U-Nets): a 3D card whose recipe is a slice recipe (a recipe without ``kind: volume``);
        ``input_size`` is then [depth, size, size], ``depth`` the slices of its windows."""
        return (
            self.is_segmentation
            and self.spatial_dims == 3
            and bool(self.recipe)
            and self.recipe.get("kind") != "volume"
        )

    @property
    def stack_depth(self) -> int | None:
        """A stack network's window depth in slices (``input_size[0]`` of a 3-long input size), else None."""
        return int(self.input_size[0]) if self.is_stack_segmentation and len(self.input_size) == 3 else None
