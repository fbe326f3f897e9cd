"""Random walker against hand cases: seeds on both sides of a sharp edge give the edge (2D and 3D, one or
more channels), seeds follow the incoming mask, and every fallback (no foreground seed, no background
seed, a constant image, no unlabelled pixel) is the documented one."""

import numpy as np
import pytest
import torch
from refine_cases import ring_case

from WSSSCamLib.refine import RandomWalker, RefinementError


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(("noise", "channels"), [(0.0, 1), (0.1, 1), (0.1, 2)])
def test_seeds_on_both_sides_of_an_edge_give_the_edge(dims, noise, channels):
    truth, maps, image = ring_case(dims, noise, channels)
    mask = maps > 0.4  # the CAM mask covers the whole undecided band, beyond the edge
    assert not torch.equal(mask, truth)
    assert torch.equal(RandomWalker()(mask, maps, image), truth)


def test_seeds_are_the_confident_map_inside_and_outside_the_incoming_mask():
    step = RandomWalker(low=0.2, high=0.8)
    cam = np.array([0.9, 0.9, 0.5, 0.1, 0.1])
    mask = np.array([True, False, True, True, False])
    # 0.9 in the mask -> foreground; 0.9 outside -> unlabelled; 0.1 inside -> unlabelled; 0.1 outside -> background
    assert step.seeds(mask, cam).tolist() == [2, 0, 0, 0, 1]


def test_no_foreground_seed_gives_an_empty_mask():
    _truth, maps, image = ring_case(2, noise=0.1)
    mask = maps > 0.4
    assert not RandomWalker(high=1.0)((mask), maps * 0.9, image).any()  # nowhere >= high
    assert not RandomWalker()(torch.zeros_like(mask), maps, image).any()  # empty incoming mask


def test_no_background_seed_or_a_constant_image_keeps_the_mask():
    _truth, maps, image = ring_case(2, noise=0.1)
    mask = maps > 0.4
    lifted = 0.3 + 0.7 * maps  # every pixel above low = 0.2
    assert torch.equal(RandomWalker()(mask, lifted, image), mask)
    assert torch.equal(RandomWalker()(mask, maps, torch.full_like(image, 2.0)), mask)


def test_every_pixel_a_seed_gives_the_foreground_seeds():
    maps = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])
    image = torch.tensor([[[[0.0, 0.0, 1.0, 1.0]]]])
    assert RandomWalker()(maps > 0.5, maps, image).tolist() == [[[False, False, True, True]]]


def test_seed_cuts_compare_in_the_maps_dtype():
    # float32(0.2) > 0.2 in float64; as in WSSSCamLib.masks the cut is taken in the maps' dtype, so a map value
    # of exactly 0.2 is a background seed and the middle pixel is decided by the image (not the no-seed fallback)
    maps = torch.tensor([[[0.2, 0.5, 0.8]]], dtype=torch.float32)
    image = torch.tensor([[[[0.0, 0.0, 1.0]]]])
    assert RandomWalker(low=0.2, high=0.8)(maps > 0.4, maps, image).tolist() == [[[False, False, True]]]


def test_samples_are_independent():
    truth, maps, image = ring_case(2, noise=0.1)
    mask = maps > 0.4
    out = RandomWalker()(torch.cat([mask, torch.zeros_like(mask)]), maps.repeat(2, 1, 1), image.repeat(2, 1, 1, 1))
    assert torch.equal(out[0], truth[0]) and not out[1].any()


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"low": -0.1}, "low"),
        ({"high": 1.1}, "high"),
        ({"low": 0.6, "high": 0.6}, "low"),
        ({"beta": 0}, "beta"),
        ({"tol": -1}, "tol"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, setting):
    with pytest.raises(RefinementError, match=rf"^random_walker: setting {setting} "):
        RandomWalker(**kwargs)
