"""A segmentation network's own segmentation (WSSSCamLib.inference.segmentation) with hand-set weights:
softmax, bilinear resizing of the probabilities, argmax not background, 1 - p(background)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from WSSSCamLib.data.volume import Volume
from WSSSCamLib.inference.segmentation import (
    check_segmentation_card,
    slice_segmentation,
    stack_segmentation,
    volume_segmentation,
)
from WSSSCamLib.models.card import ModelCard


def one_by_one(weights: list[float], biases: list[float]) -> nn.Module:
    """A 1 x 1 convolution from one channel to len(weights) classes: logit_c = w_c x + b_c."""
    network = nn.Conv2d(1, len(weights), 1)
    with torch.no_grad():
        network.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(-1, 1, 1, 1))
        network.bias.copy_(torch.tensor(biases, dtype=torch.float32))
    return network.eval()


def test_two_classes_the_segment_is_p_abnormal_above_half_and_a_tie_stays_background():
    network = one_by_one([0.0, 1.0], [0.0, 0.0])  # p(abnormal) = sigmoid(x)
    x = torch.tensor([[[[-2.0, 0.0], [0.5, 3.0]]]])
    probability, mask = slice_segmentation(network, x, (2, 2), 2)
    np.testing.assert_allclose(probability.numpy(), torch.sigmoid(x)[:, 0].numpy(), atol=1e-6)
    assert mask.tolist() == [[[False, False], [True, True]]]  # x = 0: p = 0.5, a tie: background


def test_three_classes_the_segment_is_every_non_background_argmax_and_probabilities_are_resized_first():
    network = one_by_one([-1.0, 1.0, 0.0], [0.0, 0.0, 0.5])
    x = torch.tensor([[[[-3.0, 3.0], [0.0, 0.2]]]])
    probability, mask = slice_segmentation(network, x, (4, 4), 3)
    by_hand = F.interpolate(torch.softmax(network(x), 1), size=(4, 4), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(probability.detach().numpy(), 1 - by_hand[:, 0].detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(mask.numpy(), (by_hand.argmax(1) != 0).numpy())
    assert mask.any() and not mask.all()


def test_a_volume_is_segmented_on_its_own_grid_along_the_recipes_axis():
    card = ModelCard("monai-unet", 1, 2, ["background", "abnormal"], ["x"], recipe={"size": 4, "axis": "J"})
    image = np.zeros((3, 5, 4), np.float32)
    image[:, 2:, :] = np.linspace(1, 2, 4, dtype=np.float32)  # non-zero voxels: the recipe's z-score acts on them
    result = volume_segmentation(Volume(image, np.eye(4)), one_by_one([0.0, 10.0], [0.0, 0.0]), card, 2, "cpu")
    assert result.axis == "J" and tuple(result.mask.shape) == (3, 5, 4) and result.probability.dtype == torch.float32
    assert result.mask.any() and not result.mask.all()


def test_cards_that_cannot_give_a_segment_are_refused_by_name():
    with pytest.raises(ValueError, match="m.json: a segmentation network needs at least two output classes"):
        check_segmentation_card(ModelCard("monai-unet", 1, 1, ["lesion"], ["x"]), "m.json")
    volume_recipe = {"kind": "volume", "size": [16, 32, 32]}
    with pytest.raises(ValueError, match="m.json: a 3D segmentation network on a volume recipe"):
        check_segmentation_card(
            ModelCard("monai-unet", 1, 2, ["a", "b"], ["x"], spatial_dims=3, recipe=volume_recipe), "m.json"
        )
    with pytest.raises(ValueError, match="m.json: a 3D segmentation network on a missing recipe"):
        check_segmentation_card(ModelCard("monai-unet", 1, 2, ["a", "b"], ["x"], spatial_dims=3), "m.json")
    slice_recipe = {"size": 32, "axis": "K"}
    check_segmentation_card(  # a stack of a slice recipe's slices
        ModelCard("monai-unet", 1, 2, ["a", "b"], ["x"], spatial_dims=3, recipe=slice_recipe), "m.json"
    )
    with pytest.raises(ValueError, match=r"expected N x 2 x H x W"):
        slice_segmentation(nn.Sequential(nn.Flatten(), nn.LazyLinear(2)), torch.ones(1, 1, 2, 2), (2, 2), 2)


def one_by_one_3d(weights: list[float], biases: list[float], depth_kernel: int = 1) -> nn.Module:
    """A 3D convolution from one channel to len(weights) classes: with ``depth_kernel`` 3, logit_c = w_c times
    the sum of a voxel and its two neighbours along the stack (zero padded) + b_c."""
    network = nn.Conv3d(1, len(weights), (depth_kernel, 1, 1), padding=(depth_kernel // 2, 0, 0))
    with torch.no_grad():
        network.weight.copy_(
            torch.tensor(weights, dtype=torch.float32).view(-1, 1, 1, 1, 1).expand(-1, 1, depth_kernel, 1, 1)
        )
        network.bias.copy_(torch.tensor(biases, dtype=torch.float32))
    return network.eval()


def test_a_3d_network_sees_the_stack_of_slices_padded_with_zeros_to_a_multiple_of_8():
    """5 slices of 2 x 2: the network sums each voxel with its neighbours along the stack, so the last slice sees
    the zero padding and the middle ones see their neighbours; probabilities are resized like a 2D network's."""
    network = one_by_one_3d([0.0, 1.0], [0.0, -0.5], depth_kernel=3)
    slices = torch.arange(20, dtype=torch.float32).view(5, 1, 2, 2) / 20
    probability, mask = stack_segmentation(network, slices, (4, 4), 2)
    padded = torch.cat([slices, torch.zeros(1, 1, 2, 2)])[:, 0]
    summed = torch.stack([padded[max(0, i - 1) : i + 2].sum(0) for i in range(5)])
    by_hand = F.interpolate(torch.sigmoid(summed - 0.5)[:, None], size=(4, 4), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(probability.numpy(), by_hand[:, 0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(mask.numpy(), by_hand[:, 0].numpy() > 0.5)
    assert probability.shape == (5, 4, 4) and mask.any() and not mask.all()
    with pytest.raises(ValueError, match=r"expected 1 x 3 x 8 x H x W"):
        stack_segmentation(network, slices, (4, 4), 3)


def test_a_3d_card_segments_a_volume_over_its_stack():
    """The volume path: a 3D card with a slice recipe goes through stack_segmentation, on the volume's grid."""
    network = one_by_one_3d([0.0, 1.0], [0.0, 0.0])
    card = ModelCard(
        "monai-unet",
        1,
        2,
        ["background", "abnormal"],
        ["x"],
        spatial_dims=3,
        input_size=[4, 4],
        slice_axis="K",
        recipe={"size": 4, "axis": "K", "clip_percentiles": [0.0, 100.0], "context_channel": None},
    )
    array = np.random.default_rng(0).normal(size=(3, 4, 4)).astype(np.float32)
    result = volume_segmentation(Volume(array, np.eye(4)), network, card, device="cpu")
    assert result.mask.shape == (3, 4, 4) and result.probability.shape == (3, 4, 4)
    assert result.mask.equal(result.probability > 0.5)


def test_a_3d_network_with_a_window_depth_averages_the_windows_it_was_trained_on():
    """6 slices, windows of 4 at starts 0 and 2: slices 2-3 get the mean of both windows' softmax; a network
    that sums each slice with its stack neighbours sees a window's edge as zero padding."""
    network = one_by_one_3d([0.0, 1.0], [0.0, -0.5], depth_kernel=3)
    slices = torch.arange(24, dtype=torch.float32).view(6, 1, 2, 2) / 24
    probability, _ = stack_segmentation(network, slices, (2, 2), 2, depth=4)

    def window(start):
        part = slices[start : start + 4, 0]
        padded = torch.cat([torch.zeros(1, 2, 2), part, torch.zeros(1, 2, 2)])
        return torch.sigmoid(torch.stack([padded[i : i + 3].sum(0) for i in range(4)]) - 0.5)

    first, second = window(0), window(2)
    expected = torch.cat([first[:2], (first[2:] + second[:2]) / 2, second[2:]])
    np.testing.assert_allclose(probability.numpy(), expected.numpy(), atol=1e-6)
