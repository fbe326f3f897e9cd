"""Preprocessing keeps geometry: a voxel's world position survives crop/pad and resampling."""

import numpy as np

from WSSSCamLib.data.synthetic import phantom
from WSSSCamLib.data.transforms import (
    Compose,
    CropOrPad,
    PercentileClip,
    RemoveBackground,
    Resample,
    ZScore,
    two_means_foreground,
)
from WSSSCamLib.data.volume import Volume, affine_from_geometry


def volume(shape=(6, 8, 10)):
    direction = np.array([[0, -1.0, 0], [1.0, 0, 0], [0, 0, 1.0]])
    image = np.zeros((1, *shape), np.float32)
    image[0, 3, 4, 5] = 100.0
    return Volume(image, affine_from_geometry([0.5, 1.0, 2.0], [3.0, -4.0, 5.0], direction))


def world_of_peak(v):
    k, j, i = np.unravel_index(np.argmax(v.array[0]), v.shape_kji)
    return (v.ijk_to_ras @ [i, j, k, 1])[:3]


def test_crop_and_pad_keep_world_positions():
    v = volume()
    for size in [(4, 6, 8), (9, 11, 13)]:
        out, _ = CropOrPad(size)(v, None)
        assert out.shape_kji == size
        np.testing.assert_allclose(world_of_peak(out), world_of_peak(v))


def test_resample_changes_spacing_and_keeps_the_field_of_view():
    v = volume()
    out, mask = Resample([1.0, 1.0, 1.0])(v, Volume(np.ones(v.shape_kji, np.float32), v.ijk_to_ras))
    assert out.shape_kji == (12, 8, 5)
    np.testing.assert_allclose(out.spacing, [1.0, 1.0, 1.0])
    assert mask.shape_kji == out.shape_kji
    corner_old = v.ijk_to_ras @ [-0.5, -0.5, -0.5, 1]
    corner_new = out.ijk_to_ras @ [-0.5, -0.5, -0.5, 1]
    np.testing.assert_allclose(corner_new, corner_old)  # same outer boundary of the grid


def test_intensity_transforms_ignore_background():
    rng = np.random.default_rng(0)
    array = np.zeros((2, 4, 8, 8), np.float32)
    array[:, :, 1:7, 1:7] = rng.normal(50, 10, size=(2, 4, 6, 6))
    array[0, 0, 3, 3] = 1e4  # outlier
    out, _ = Compose([PercentileClip(1, 98), ZScore()])(Volume(array), None)
    foreground = out.array[:, :, 1:7, 1:7]
    np.testing.assert_allclose(foreground.reshape(2, -1).mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(foreground.reshape(2, -1).std(1), 1, atol=1e-4)
    assert (out.array[:, :, :1] == 0).all()
    assert out.array.max() < 5


def test_background_removal_keeps_the_head_and_clears_the_rest():
    image, _ = phantom((64, 64), lesion=False, rng=np.random.default_rng(0))
    noisy = image + np.random.default_rng(1).normal(0, 0.02, image.shape).astype(np.float32)
    out, _ = RemoveBackground()(Volume(noisy[None, None]), None)
    kept = out.array[0, 0] != 0
    assert kept[32, 32] and not kept[1, 1]
    assert kept.mean() > 0.4 and (out.array[0, 0][~kept] == 0).all()


def test_two_means_splits_two_populations():
    values = np.concatenate([np.full(50, 1.0), np.full(30, 9.0)])
    assert two_means_foreground(values).sum() == 30
