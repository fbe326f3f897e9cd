"""The built-in phantoms: shapes, labels consistent with masks, determinism, 2D and 3D."""

import pytest
import torch

from WSSSCamLib.data.synthetic import synthetic_batch


@pytest.mark.parametrize("shape", [(48, 48), (16, 32, 32)])
def test_labels_match_lesion_masks_and_shapes(shape):
    batch = synthetic_batch(10, shape, positive_fraction=0.5, seed=3)
    assert batch.images.shape == (10, 1, *shape) and batch.images.dtype == torch.float32
    assert batch.masks.shape == (10, *shape) and batch.masks.dtype == torch.bool
    assert int(batch.labels.sum()) == 5
    has_lesion = batch.masks.flatten(1).any(1)
    assert torch.equal(has_lesion.long(), batch.labels)


def test_lesions_are_brighter_than_the_brain_around_them():
    batch = synthetic_batch(8, (64, 64), positive_fraction=1.0, seed=1)
    for image, mask in zip(batch.images[:, 0], batch.masks):
        ring = torch.nn.functional.max_pool2d(mask[None, None].float(), 7, 1, 3)[0, 0].bool() & ~mask
        assert image[mask].mean() > image[ring].mean()


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = synthetic_batch(4, seed=1), synthetic_batch(4, seed=1), synthetic_batch(4, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)
