"""Volume recipe: slab windows, slab labels and grids checked against hand computations."""

import numpy as np
import pytest
import torch

from WSSSCamLib.data.recipe import SliceRecipe, recipe_from_card
from WSSSCamLib.data.volume import Volume
from WSSSCamLib.data.volume_recipe import VolumeRecipe, slab_starts
from WSSSCamLib.errors import InvalidInputError
from WSSSCamLib.models.card import ModelCard


@pytest.mark.parametrize(
    "depth, slab, stride, expected",
    [
        (23, 8, 8, [0, 8, 15]),  # the last slab ends at slice 22 and overlaps the second by one slice
        (16, 8, 8, [0, 8]),
        (16, 8, 4, [0, 4, 8]),
        (5, 8, 8, [0]),  # thinner than a slab: one slab
        (10, 3, 5, [0, 5, 7]),  # gaps between slabs, one more slab ending at the last slice
    ],
)
def test_slab_starts_by_hand(depth, slab, stride, expected):
    assert slab_starts(depth, slab, stride) == expected


def _case(depth=10, rows=4, columns=6):
    image = np.arange(depth * rows * columns, dtype=np.float32).reshape(depth, rows, columns)
    mask = np.zeros((depth, rows, columns), dtype=np.uint8)
    mask[4, 1, 2] = 1  # one abnormal voxel in slice 4
    return Volume(image, np.eye(4)), Volume(mask, np.eye(4))


def test_slabs_are_the_native_windows_and_labels_say_whether_they_hold_any_abnormal_voxel():
    image, mask = _case()
    recipe = VolumeRecipe(size=(3, 4, 6), slab=3)  # grid = native slab: no resampling
    items = recipe.items("c", image, mask)
    # starts 0, 3, 6 and 7 (ends at the last slice); slice 4 is in the second slab only
    assert items.images.shape == (4, 1, 3, 4, 6)
    assert items.labels.tolist() == [0, 1, 0, 0]
    assert items.slice_index.tolist() == [0, 1, 2, 3]
    assert torch.equal(items.images[3, 0], torch.from_numpy(image.array[7:10]))
    reference = recipe.native_reference(mask)
    assert reference.shape == (4, 3, 4, 6) and bool(reference[1, 1, 1, 2]) and int(reference.sum()) == 1
    assert recipe.native_slice_index(1, 1, depth=10) == 4


def test_case_labels_without_a_mask_and_a_whole_volume_item():
    image, _ = _case()
    items = VolumeRecipe(size=(2, 2, 3)).items("c", image, None, case_label=1)
    assert items.images.shape == (1, 1, 2, 2, 3) and items.labels.tolist() == [1]
    # trilinear with half-voxel centres halving every axis = the mean of each 5 x 2 x 2 block (a linear ramp)
    expected = image.array[:5, :2, :2].mean()
    assert float(items.images[0, 0, 0, 0, 0]) == pytest.approx(float(expected))
    with pytest.raises(InvalidInputError, match="case 'c'"):
        VolumeRecipe().items("c", image, None, None)


def test_grid_masks_keep_a_lone_abnormal_voxel_and_other_axes_cut_along_their_axis():
    image, mask = _case()
    items = VolumeRecipe(size=(2, 2, 2), slab=5).items("c", image, mask)
    assert items.labels.tolist() == [1, 0] and items.masks.shape == (2, 2, 2, 2)
    assert int(items.masks[0].sum()) == 1 and int(items.masks[1].sum()) == 0
    along_i = VolumeRecipe(size=(3, 10, 4), axis="I", slab=3).items("c", image, mask)
    assert along_i.images.shape == (2, 1, 3, 10, 4)  # I = 6 columns: slabs at 0 and 3, each J x ... = 10 x 4
    assert along_i.labels.tolist() == [1, 0]  # column 2 holds the voxel


def test_volume_cards_give_their_recipe_and_slice_tools_refuse_them_in_one_line():
    recipe = VolumeRecipe(size=(8, 32, 32), slab=8)
    card = ModelCard("small-cnn", 1, 2, ["no", "yes"], ["x"], spatial_dims=3, recipe=dict(recipe.__dict__))
    assert recipe_from_card(card) == recipe
    with pytest.raises(InvalidInputError, match="recipe kind 'volume'"):
        SliceRecipe.from_card(card)


@pytest.mark.parametrize("values", [{"size": (8, 32)}, {"stride": 2}, {"slab": 0}, {"axis": "X"}, {"kind": "slice"}])
def test_bad_volume_recipes_are_refused(values):
    with pytest.raises(ValueError):
        VolumeRecipe(**values)
