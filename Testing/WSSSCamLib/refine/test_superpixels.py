"""Superpixel pooling against hand cases: a CAM mask that spills over a sharp edge snaps back to the region
(SLIC in 2D and 3D, Felzenszwalb in 2D), the pooling cut is strict, and bad settings are refused by name."""

import pytest
import torch
from refine_cases import dice, shifted_case

from WSSSCamLib.refine import Felzenszwalb, RefinementError, Slic


@pytest.mark.parametrize("channels", [1, 2])
def test_slic_2d_snaps_a_shifted_mask_to_the_square(channels):
    truth, mask, image = shifted_case(2, shift=3, channels=channels)
    assert dice(mask, truth) < 0.9
    assert torch.equal(Slic(n=20)(mask, mask.float(), image), truth)
    # pool=map: mean CAM per superpixel (the square's mean is 0.9 * 17/20 > 0.5; its neighbours' are small)
    assert torch.equal(Slic(n=20, pool="map")(mask, 0.9 * mask.float(), image), truth)


def test_slic_3d_supervoxels_snap_a_shifted_mask_to_the_cube():
    truth, mask, image = shifted_case(3, shift=2)
    assert dice(mask, truth) < 0.85
    assert torch.equal(Slic(n=27)(mask, mask.float(), image), truth)


def test_the_pooling_cut_is_strict():
    truth, mask, image = shifted_case(2, shift=3)  # 17 of the square's 20 rows are in the mask: fraction 0.85
    assert torch.equal(Slic(n=20, min_fraction=0.84)(mask, mask.float(), image), truth)
    assert not Slic(n=20, min_fraction=0.85)(mask, mask.float(), image).any()


@pytest.mark.parametrize("noise", [0.0, 0.02])
@pytest.mark.parametrize("channels", [1, 3])
def test_felzenszwalb_2d_snaps_a_shifted_mask_to_the_square(noise, channels):
    truth, mask, image = shifted_case(2, shift=3, noise=noise, channels=channels)
    assert torch.equal(Felzenszwalb(sigma=0)(mask, mask.float(), image), truth)


@pytest.mark.parametrize("step", [Slic(n=20), Felzenszwalb()], ids=["slic", "felzenszwalb"])
def test_default_smoothing_on_a_noisy_image_still_comes_close(step):
    truth, mask, image = shifted_case(2, shift=3, noise=0.05)
    assert dice(step(mask, mask.float(), image), truth) >= 0.97 > dice(mask, truth) + 0.1


def test_felzenszwalb_default_scale_is_independent_of_the_intensity_scale():
    _truth, mask, image = shifted_case(2, shift=3, noise=0.05)
    step = Felzenszwalb(sigma=0)
    assert torch.equal(step(mask, mask.float(), image * 50 - 7), step(mask, mask.float(), image))


def test_felzenszwalb_is_2d_only_and_says_so():
    _truth, mask, image = shifted_case(3)
    with pytest.raises(RefinementError, match=r"felzenszwalb: masks must be N x H x W .*2D only"):
        Felzenszwalb()(mask, mask.float(), image)


def test_pooling_needs_images():
    _truth, mask, _image = shifted_case(2)
    with pytest.raises(RefinementError, match="slic: needs images"):
        Slic()(mask, mask.float())


@pytest.mark.parametrize(
    ("make", "setting"),
    [
        (lambda: Slic(n=0), "n"),
        (lambda: Slic(n=2.5), "n"),
        (lambda: Slic(compactness=0), "compactness"),
        (lambda: Slic(sigma=-1), "sigma"),
        (lambda: Slic(max_iter=0), "max_iter"),
        (lambda: Slic(pool="median"), "pool"),
        (lambda: Slic(min_fraction=1.5), "min_fraction"),
        (lambda: Slic(pool="map", min_mean=-0.1), "min_mean"),
        (lambda: Slic(min_mean=0.5), "min_mean"),
        (lambda: Slic(pool="map", min_fraction=0.5), "min_fraction"),
        (lambda: Felzenszwalb(scale=0), "scale"),
        (lambda: Felzenszwalb(min_size=0), "min_size"),
    ],
)
def test_bad_settings_are_refused_by_name(make, setting):
    with pytest.raises(RefinementError, match=rf"^(slic|felzenszwalb): setting {setting} "):
        make()


def test_pool_cut_defaults_follow_the_pool():
    assert (Slic().min_fraction, Slic().min_mean) == (0.5, None)
    assert (Slic(pool="map").min_fraction, Slic(pool="map").min_mean) == (None, 0.5)
