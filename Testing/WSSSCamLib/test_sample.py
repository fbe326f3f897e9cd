"""The Slicer module's built-in sample, made from the repository's generator and a tiny training run."""

import nibabel
import numpy as np

from WSSSCamLib.sample import make_sample
from WSSSCamLib.training.checkpoint import card_path, load_checkpoint, read_card


def test_sample_is_a_phantom_with_a_lesion_and_a_trained_checkpoint_made_once(tmp_path):
    files = make_sample(tmp_path, cases=4, shape=(6, 32, 32), epochs=1)
    image, mask = nibabel.load(str(files.volume)), nibabel.load(str(files.segmentation))
    assert image.shape == mask.shape == (32, 32, 6)
    np.testing.assert_allclose(image.affine, mask.affine)
    assert mask.get_fdata().any()
    card = read_card(card_path(files.checkpoint))
    assert list(card.class_names)[-1] == "lesion" or len(card.class_names) == 2
    model, loaded_card = load_checkpoint(files.checkpoint, device="cpu")
    assert loaded_card.architecture == card.architecture
    stamp = files.checkpoint.stat().st_mtime_ns
    assert make_sample(tmp_path, cases=4, shape=(6, 32, 32), epochs=1) == files
    assert files.checkpoint.stat().st_mtime_ns == stamp
