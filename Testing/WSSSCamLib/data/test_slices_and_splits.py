"""Slice labels from masks, and case-level folds that never leak a case into two splits."""

import numpy as np
import pytest
import torch

from WSSSCamLib.data.slices import SliceSet, extract_slices
from WSSSCamLib.data.splits import Folds, case_folds
from WSSSCamLib.data.volume import Volume


def test_slice_labels_are_any_foreground_voxel():
    image = Volume(np.random.default_rng(0).random((2, 4, 6, 6)).astype(np.float32))
    mask = np.zeros((4, 6, 6), np.float32)
    mask[1, 2, 2] = 1
    mask[3] = 1
    slices = extract_slices("c1", image, Volume(mask), axis="K", size=(12, 12))
    assert slices.images.shape == (4, 2, 12, 12)
    assert slices.labels.tolist() == [0, 1, 0, 1]
    assert slices.masks.shape == (4, 12, 12) and slices.masks[3].all()
    along_i = extract_slices("c1", image, Volume(mask), axis="I")
    assert along_i.images.shape == (6, 2, 4, 6) and along_i.labels.tolist() == [1, 1, 1, 1, 1, 1]


def test_case_label_when_no_mask_and_subsets():
    image = Volume(np.zeros((3, 5, 5), np.float32))
    slices = SliceSet.concatenate([extract_slices("a", image, case_label=1), extract_slices("b", image, case_label=0)])
    assert slices.labels.tolist() == [1, 1, 1, 0, 0, 0]
    assert slices.of_cases(["b"]).case_ids == ["b"] * 3
    with pytest.raises(ValueError, match="need a mask or a case label"):
        extract_slices("c", image)


def test_folds_partition_cases_without_leakage_and_are_seeded(tmp_path):
    ids = [f"case{i}" for i in range(23)]
    labels = [i % 3 == 0 for i in range(23)]
    folds = case_folds(ids, k=5, seed=4, labels=labels)
    assert sorted(c for f in folds.folds for c in f) == sorted(ids)
    for fold in range(5):
        assert not set(folds.training(fold)) & set(folds.held_out(fold))
        positives = sum(labels[ids.index(c)] for c in folds.held_out(fold))
        assert positives in (1, 2)  # 8 positives dealt over 5 folds
    assert case_folds(ids, 5, seed=4, labels=labels) == folds
    assert case_folds(ids, 5, seed=5, labels=labels) != folds
    assert Folds.load(folds.save(tmp_path / "folds.json")) == folds


def test_slices_of_a_case_stay_in_its_fold():
    image = Volume(np.zeros((3, 4, 4), np.float32))
    slices = SliceSet.concatenate([extract_slices(c, image, case_label=0) for c in "abcdef"])
    folds = case_folds(list("abcdef"), k=3, seed=0)
    for fold in range(3):
        train, test = slices.of_cases(folds.training(fold)), slices.of_cases(folds.held_out(fold))
        assert len(train) + len(test) == len(slices)
        assert not set(train.case_ids) & set(test.case_ids)
    with pytest.raises(ValueError, match="unique"):
        case_folds(["a", "a", "b"], k=2)
    assert isinstance(slices.slice_index, torch.Tensor)
