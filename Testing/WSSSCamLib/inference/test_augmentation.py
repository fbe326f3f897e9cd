"""Multi-scale / flip test-time augmentation of CAMs against a hand computation with the engine."""

import pytest
import torch
import torch.nn.functional as F

from WSSSCamLib.cams import CamEngine
from WSSSCamLib.cams.postprocess import min_max_normalize
from WSSSCamLib.inference import TestTimeAugmentation, slice_cams
from WSSSCamLib.models.zoo import build_model


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    return CamEngine(build_model("small-cnn", 2, 2).eval())


def test_no_augmentation_is_the_plain_computation(engine):
    images = torch.randn(3, 2, 32, 32)
    plain, p = slice_cams(engine, images, ["grad-cam"], 1, (40, 36))
    same, q = slice_cams(engine, images, ["grad-cam"], 1, (40, 36), augmentation=TestTimeAugmentation())
    torch.testing.assert_close(same["grad-cam"], plain["grad-cam"])
    torch.testing.assert_close(q, p)


def test_scales_and_flip_by_hand(engine):
    images = torch.randn(2, 2, 32, 32)
    augmentation = TestTimeAugmentation((1.0, 1.5), flip=True)
    fused, probability = slice_cams(engine, images, ["grad-cam", "layer-cam"], 1, (40, 36), augmentation=augmentation)
    for method in ("grad-cam", "layer-cam"):
        total, mean_p = 0, 0
        for scale in (1.0, 1.5):
            x = images if scale == 1.0 else F.interpolate(images, size=(48, 48), mode="bilinear", align_corners=False)
            for mirrored in (False, True):
                result = engine(x.flip(-1) if mirrored else x, 1, [method])
                maps = result.maps[method].flip(-1) if mirrored else result.maps[method]
                total = total + F.interpolate(maps[:, None], size=(40, 36), mode="bilinear", align_corners=False)[:, 0]
                mean_p = mean_p + torch.softmax(result.logits, 1)[:, 1] / 4
        torch.testing.assert_close(fused[method], min_max_normalize(total / 4), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(probability, mean_p, atol=1e-6, rtol=1e-5)
    assert fused["grad-cam"].amin() >= 0 and fused["grad-cam"].amax() <= 1


def test_errors_name_the_problem(engine):
    with pytest.raises(ValueError, match="scales must be between 0.25 and 4"):
        TestTimeAugmentation((1.0, 8.0))
    with pytest.raises(ValueError, match="not available for the Seg- methods"):
        slice_cams(
            engine,
            torch.randn(1, 2, 16, 16),
            ["grad-cam"],
            1,
            (16, 16),
            torch.ones(1, 16, 16, dtype=torch.bool),
            TestTimeAugmentation(flip=True),
        )
