"""Guan & Loew 2021's filtered retraining: the filter by hand, borrowed masks, and the study stage end to end."""

import json

import pandas as pd
import pytest
import torch

from WSSSCamLib.data.slices import SliceSet
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.inference.volume_cams import cam_engine_for, slice_cams
from WSSSCamLib.study import ConfigError, parse_config, retraining, run_study
from WSSSCamLib.training.checkpoint import load_checkpoint

TRAIN = {"epochs": 1, "patience": 0, "batch_size": 16, "augment": False}


def config_dict(root, variants=("cam", "mask", "original")):
    return {
        "dataset": str(root / "data"),
        "output": str(root / "out"),
        "folds": 2,
        "seed": 0,
        "device": "cpu",
        "recipe": {"size": 32},
        "models": [{"name": "a", "architecture": "small-cnn", "train": TRAIN}],
        "methods": ["grad-cam"],
        "thresholds": ["t=0.5"],
        "overlays": 0,
        "filtered_retraining": {"model": "a", "method": "grad-cam", "variants": list(variants), "epochs": 1},
    }


def test_filter_keeps_weighted_pixels_and_sends_the_rest_to_the_slice_minimum():
    images = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]], [[10.0, 20.0], [30.0, 40.0]]]])  # 1 x 2 channels x 2 x 2
    weights = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    out = retraining.filter_slices(images, weights)
    # channel 0: minimum -2 -> -2 + (x + 2) * w ; channel 1: minimum 10
    expected = torch.tensor([[[[1.0, -2.0], [-2 + 5 * 0.5, -2.0]], [[10.0, 10.0], [10 + 20 * 0.5, 10.0]]]])
    assert torch.equal(out, expected)
    assert torch.equal(retraining.filter_slices(images, torch.ones(1, 2, 2)), images)
    with pytest.raises(ValueError, match="weights of shape"):
        retraining.filter_slices(images, torch.ones(1, 3, 2))


def test_normal_slices_borrow_the_mask_of_an_abnormal_slice():
    masks = torch.zeros(5, 4, 4, dtype=torch.bool)
    masks[1, 0, 0] = masks[3, 2:, 2:] = True
    labels = masks.flatten(1).any(1).long()
    slices = SliceSet(torch.zeros(5, 1, 4, 4), labels, masks, ["c"] * 5, torch.arange(5))
    borrowed = retraining.borrowed_masks(slices, seed=7)
    assert torch.equal(borrowed[1], masks[1].float()) and torch.equal(borrowed[3], masks[3].float())
    for normal in (0, 2, 4):
        assert any(torch.equal(borrowed[normal], masks[a].float()) for a in (1, 3))
    assert torch.equal(borrowed, retraining.borrowed_masks(slices, seed=7))  # seeded
    with pytest.raises(ValueError, match="needs reference masks"):
        retraining.borrowed_masks(
            SliceSet(torch.zeros(1, 1, 2, 2), torch.zeros(1).long(), None, ["c"], torch.arange(1)), 0
        )


@pytest.fixture(scope="module")
def study_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    write_synthetic_dataset(root / "data", cases=6, shape=(6, 32, 32), seed=5)
    run_study(parse_config(config_dict(root), "test"), stages=["train"], progress=False)
    return root


def test_retrain_stage_trains_on_the_filtered_slices_and_resumes(study_root, monkeypatch):
    config = parse_config(config_dict(study_root), "test")
    seen = {}
    real_train = retraining.train_classifier

    def spy(model, train, validation, config_):
        seen.setdefault(config_.seed, []).append(train)
        return real_train(model, train, validation, config_)

    monkeypatch.setattr(retraining, "train_classifier", spy)
    run_study(config, stages=["retrain"], progress=False)
    table = retraining.retraining_table(config.output)
    assert sorted(zip(table["variant"], table["fold"])) == sorted(
        (v, f) for v in ("cam", "mask", "original") for f in (0, 1)
    )
    assert table["accuracy"].between(0, 1).all() and (table["epochs"] == 1).all()
    # fold 0 (seed 0 + fold 0): variants in config order cam, mask, original
    cam_set, mask_set, original = seen[0]
    folds = json.loads((config.output / "folds.json").read_text())["folds"]
    assert set(original.case_ids) == set(folds[1])  # trained on the other fold's cases only
    floor = original.images.amin(dim=(2, 3), keepdim=True)
    # mask variant: abnormal slices keep the lesion, everything outside it is the slice minimum
    abnormal = original.labels > 0
    inside = original.masks[abnormal][:, None].expand_as(original.images[abnormal])
    assert torch.allclose(mask_set.images[abnormal][inside], original.images[abnormal][inside], atol=1e-6)
    assert torch.equal(
        mask_set.images[abnormal][~inside], floor[abnormal].expand_as(original.images[abnormal])[~inside]
    )
    # cam variant: the fold-0 model's Grad-CAM, computed here independently of the stage
    model, card = load_checkpoint(config.output / "models" / "a" / "fold0" / "model.pt", device="cpu")
    maps, _ = slice_cams(cam_engine_for(model.eval(), card), original.images, ["grad-cam"], 1, (32, 32))
    expected = floor + (original.images - floor) * maps["grad-cam"][:, None]
    assert torch.allclose(cam_set.images, expected, atol=1e-5)
    # resume: nothing left to train
    seen.clear()
    run_study(config, stages=["retrain"], progress=False)
    assert seen == {}


def test_report_lists_the_retraining_next_to_the_checkpoints(study_root):
    config = parse_config(config_dict(study_root), "test")
    run_study(config, progress=False)
    per_fold = pd.read_csv(config.output / "retraining.csv")
    assert set(per_fold["variant"]) == {"checkpoint", "cam", "mask", "original"}
    html = (config.output / "report.html").read_text()
    assert "Retraining a on filtered slices" in html


def test_report_waits_for_every_retraining(study_root, tmp_path):
    data = {**config_dict(study_root, ("cam", "inverse-mask")), "output": str(tmp_path / "out")}
    config = parse_config(data, "test")
    import shutil

    shutil.copytree(study_root / "out" / "models", tmp_path / "out" / "models")
    run_study(config, stages=["cams"], progress=False)
    with pytest.raises(RuntimeError, match="inverse-mask/fold0"):
        run_study(config, stages=["report"], progress=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "nope"}, "filtered_retraining.model must name a listed model"),
        ({"variants": ["cam", "blur"]}, "filtered_retraining.variants"),
        ({"method": "score-cam"}, "does not compute"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"threshold": "t=x"}, "filtered_retraining.threshold"),
        ({"colour": 1}, "unknown key"),
        ({"model": ["a"]}, "filtered_retraining.model must be a string"),
        ({"method": None}, "filtered_retraining.method must be a string"),
        ({"epochs": True}, "epochs must be a positive integer"),
        ({"variants": ["cam", "cam"]}, "names a variant twice"),
    ],
)
def test_retraining_config_errors_name_the_key(tmp_path, change, message):
    data = config_dict(tmp_path)
    data["filtered_retraining"] = {**data["filtered_retraining"], **change}
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "study.yaml")


def test_changed_settings_retrain_and_the_study_fingerprint_ignores_them(study_root, monkeypatch):
    from WSSSCamLib.study import StudyContext
    from WSSSCamLib.study.provenance import config_fingerprint
    from WSSSCamLib.study.stages.retrain import stale_results

    config = parse_config(config_dict(study_root, ("original",)), "test")
    run_study(config, stages=["retrain"], progress=False)
    trained = []
    real_train = retraining.train_classifier
    monkeypatch.setattr(retraining, "train_classifier", lambda *a: trained.append(a[3]) or real_train(*a))
    run_study(config, stages=["retrain"], progress=False)
    assert trained == []  # same settings: nothing to do
    data = config_dict(study_root, ("original",))
    data["filtered_retraining"]["epochs"] = 2
    changed = parse_config(data, "test")
    assert stale_results(StudyContext.open(config)) == []
    assert stale_results(StudyContext.open(changed)) == ["original/fold0", "original/fold1"]  # the report refuses these
    run_study(changed, stages=["retrain"], progress=False)
    assert stale_results(StudyContext.open(changed)) == []
    assert len(trained) == 2 and all(c.epochs == 2 for c in trained)  # both folds again, with the new epochs
    assert (retraining.retraining_table(changed.output, ["original"], 2)["epochs"] == 2).all()
    # the units' fingerprint does not depend on the retraining settings (units stay valid)
    assert (
        config_fingerprint(changed)
        == config_fingerprint(config)
        == config_fingerprint(parse_config({**data, "filtered_retraining": None}, "t"))
    )
