"""Fixed splits and honest choices: the test cases choose nothing and are not read while training.

* The report's choices (each single configuration's threshold rule, the ensembles' member thresholds,
  the best configuration) read training rows only: making every held-out count favour another
  configuration moves the reported test numbers, never a choice (on hand-made rows, and on the units
  of a real fixed-split study).
* Ties on the training cases are listed, not broken.
* A fixed-split study (``split_file``) runs end to end on generated data, as one fold; its train stage
  succeeds with the test cases' files corrupted; a ``test_dataset`` trains on all of ``dataset`` and
  never reads the test dataset's images while training.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from WSSSCamLib.data.splits import Folds, fixed_split, load_folds
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.errors import InvalidInputError
from WSSSCamLib.report import best_configurations, headline_table
from WSSSCamLib.study import aggregate, layout, parse_config, run_study
from WSSSCamLib.study.context import StudyContext

COLUMNS = ["case", "slice", "fold", "role", "model", "method", "result", "kind", "tp", "fp", "fn", "tn"]
TRAIN = {  # (model, method, result, kind) -> (tp, fp) per training case of 100 lesion + 900 other voxels
    ("m", "a", "t=0.30", "threshold"): (85, 5),
    ("m", "a", "t=0.50", "threshold"): (60, 5),
    ("m", "a", "p95", "threshold"): (50, 20),
    ("m", "c", "t=0.30", "threshold"): (85, 5),  # identical to m / a: a tie
    ("m", "c", "t=0.50", "threshold"): (60, 5),
    ("m", "c", "p95", "threshold"): (50, 20),
    ("m", "b", "t=0.30", "threshold"): (40, 30),
    ("m", "b", "t=0.50", "threshold"): (70, 10),
    ("m", "b", "p95", "threshold"): (30, 30),
    ("and(m/a, m/b)", "ensemble", "t=0.30|t=0.50", "ensemble"): (75, 5),
    ("and(m/a, m/b)", "ensemble", "t=0.50|t=0.50", "ensemble"): (55, 2),
    ("", "empty", "empty", "empty"): (0, 0),
}


def hand_slices(favour_b_on_test: bool) -> pd.DataFrame:
    """Rows of 4 training cases (case-summed) and 3 held-out cases (2 slices each) of one fold; on the
    held-out cases the counts equal the training ones, or, with ``favour_b_on_test``, m / b at p95 is
    perfect there and everything else poor."""
    rows = []
    for case in ("t1", "t2", "t3", "t4"):
        for (model, method, result, kind), (tp, fp) in TRAIN.items():
            rows.append([case, -1, 0, "train", model, method, result, kind, tp, fp, 100 - tp, 900 - fp])
    for case in ("s1", "s2", "s3"):
        for index in range(2):
            for (model, method, result, kind), (tp, fp) in TRAIN.items():
                if favour_b_on_test and kind != "empty":
                    tp, fp = (50, 0) if (method, result) == ("b", "p95") else (5, 40)
                half = (tp // 2, fp // 2, 50 - tp // 2, 450 - fp // 2)
                rows.append([case, index, 0, "test", model, method, result, kind, *half])
    return pd.DataFrame(rows, columns=COLUMNS).assign(probability=np.nan, score=np.nan)


def choices_and_headline(slices):
    grid = aggregate.grid_search_table(slices)
    thresholds = aggregate.training_threshold_table(slices)
    training = aggregate.training_scores(slices, grid, thresholds)
    test = aggregate.test_rows(slices, grid, thresholds)
    results = aggregate.results_table(test)
    headline = headline_table(results, aggregate.case_counts(test), training, resamples=200)
    return grid, thresholds, training, headline


def test_test_results_choose_nothing_and_ties_are_listed():
    honest = choices_and_headline(hand_slices(False))
    perturbed = choices_and_headline(hand_slices(True))
    for before, after in zip(honest[:3], perturbed[:3]):  # grid, thresholds, training scores: unchanged
        pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))
    thresholds = honest[1].set_index("method")["threshold"].to_dict()
    assert thresholds == {"a": "t=0.30", "b": "t=0.50", "c": "t=0.30"}
    assert (honest[1]["training_cases"] == 4).all()
    best = best_configurations(honest[2])
    assert sorted(best["method"]) == ["a", "c"]  # the tie is listed, not broken
    for headline in (honest[3], perturbed[3]):
        assert sorted(headline.loc[headline["best"], "configuration"]) == ["m / a", "m / c"]
    before, after = (h.set_index("configuration") for h in (honest[3], perturbed[3]))
    assert after.loc["m / b", "dsc"] < before.loc["m / b", "dsc"]  # b's held-out rows under t=0.50 got worse
    assert after.loc["m / a", "dsc"] < before.loc["m / a", "dsc"]  # the reported test numbers move
    assert before.loc["m / b", "oracle_rule"] == "t=0.50" and after.loc["m / b", "oracle_rule"] == "p95"
    assert after.loc["m / b", "oracle_dsc"] > after.loc["m / a", "dsc"]  # only the upper-bound column sees it
    assert before.loc["Empty", "dsc"] == after.loc["Empty", "dsc"]
    row = before.loc["m / a"]
    assert row["dsc_low"] <= row["dsc"] <= row["dsc_high"] and row["delta_dsc"] > 0
    assert row["a_priori_rule"] == "t=0.50" and row["a_priori_dsc"] < row["dsc"]


def test_split_files_and_folds_files():
    folds = fixed_split(["a", "b"], ["c"], ["d"])
    assert folds.fixed and folds.training(0) == ["a", "b", "d"] and folds.validation_of(0) == ["d"]
    assert folds.role("c", 0) == "test" and folds.role("d", 0) == "train" and folds.role("x", 0) is None
    with pytest.raises(InvalidInputError, match="in 'train' and in 'test'"):
        fixed_split(["a", "b"], ["b"])
    k_fold = Folds([["a"], ["b"], ["c"]], 0)
    assert not k_fold.fixed and k_fold.training(1) == ["a", "c"] and k_fold.role("a", 1) == "train"


TRAIN_OPTIONS = {"epochs": 1, "patience": 0, "batch_size": 16, "augment": False}


def study_dict(root, output, **keys):
    return {
        "dataset": str(root / "data"),
        "output": str(output),
        "seed": 0,
        "device": "cpu",
        "recipe": {"size": 32},
        "models": [{"name": "a", "architecture": "small-cnn", "train": TRAIN_OPTIONS}],
        "methods": ["grad-cam", "layer-cam"],
        "thresholds": ["t=0.3", "t=0.5", "p95"],
        "ensembles": [{"rule": "and", "members": ["a/grad-cam", "a/layer-cam"]}],
        "overlays": 1,
        **keys,
    }


def test_fixed_split_study_end_to_end(tmp_path):
    write_synthetic_dataset(tmp_path / "data", cases=6, shape=(6, 32, 32), seed=3)
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (tmp_path / "data" / "imagesTr").glob("*_0000.nii.gz"))
    train, test = cases[:4], cases[4:]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": train, "test": test}))
    assert load_folds(split).same_cases(fixed_split(train, test))
    config = parse_config(study_dict(tmp_path, tmp_path / "out", split_file=str(split)), "test")

    # the test cases are not read while training: their images and masks are corrupted, training succeeds
    # (the dataset description only requires that the files exist)
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "data", saved)
    for case in test:
        (tmp_path / "data" / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"not a volume")
        (tmp_path / "data" / "labelsTr" / f"{case}.nii.gz").write_bytes(b"not a mask")
    run_study(config, stages=["train"], progress=False)
    card = json.loads((tmp_path / "out" / "models" / "a" / "fold0" / "model.json").read_text())
    assert card["split"]["test"] == test and sorted(card["split"]["train"]) == train and card["split"]["fixed"]
    assert "not evaluated here" in card["validation"]["held_out"] and "test_auc" not in card["validation"]
    shutil.rmtree(tmp_path / "data")
    shutil.copytree(saved, tmp_path / "data")

    with pytest.raises(InvalidInputError, match="folds 0..0"):
        run_study(config, stages=["cams"], progress=False, folds=[1])
    report = run_study(config, stages=["cams", "report"], progress=False, folds=[0])
    output = tmp_path / "out"
    folds = Folds.load(layout.folds_file(output))
    assert folds.folds == [test] and folds.train == [train]
    slices = pd.read_parquet(output / "slices.parquet")
    assert set(slices["case"]) == set(test)  # only the test cases are reported
    assert "train-threshold" in set(slices["result"]) and "train-grid" in set(slices["result"])
    thresholds = pd.read_csv(output / "train_thresholds.csv")
    assert len(thresholds) == 2 and (thresholds["training_cases"] == 4).all()
    text = report.read_text()
    assert "Best configuration, chosen on the training cases only" in text and "4 training cases" in text
    assert "upper bound" in text and "a priori (t=0.50, no masks)" in text
    headline = pd.read_csv(output / "headline.csv")

    # make every held-out count favour grad-cam at p95: the choices stay, the test numbers move
    for case in test:
        path = layout.unit_paths(output, case, 0)["slices"]
        rows = pd.read_parquet(path)
        good = (rows["method"] == "grad-cam") & (rows["result"] == "p95")
        bad = (rows["kind"].isin(["threshold", "ensemble"])) & ~good
        lesion = rows["tp"] + rows["fn"]
        rows.loc[good, ["tp", "fp", "fn"]] = np.stack([lesion[good], 0 * lesion[good], 0 * lesion[good]], 1)
        rows.loc[bad, "fp"] = rows.loc[bad, "fp"] + rows.loc[bad, "tn"] // 2
        rows.loc[bad, "tn"] = rows.loc[bad, "tn"] - rows.loc[bad, "tn"] // 2
        rows.to_parquet(path, index=False)
    run_study(config, stages=["report"], progress=False)
    pd.testing.assert_frame_equal(thresholds, pd.read_csv(output / "train_thresholds.csv"))
    after = pd.read_csv(output / "headline.csv")
    assert after["best"].tolist() == headline["best"].tolist()
    assert after["rule_chosen"].tolist() == headline["rule_chosen"].tolist()
    moved = after.set_index("configuration")["dsc"] - headline.set_index("configuration")["dsc"]
    assert (moved.drop("Empty").abs() > 1e-6).all() and moved["Empty"] == 0
    grad = after.set_index("configuration").loc["a / grad-cam"]
    assert grad["oracle_rule"] == "p95"  # the test cases' favourite shows only in the upper-bound column


def test_test_dataset_trains_on_all_of_dataset_without_reading_the_test_set(tmp_path):
    write_synthetic_dataset(tmp_path / "data", cases=6, shape=(6, 32, 32), seed=3)
    description = json.loads((tmp_path / "data" / "dataset.json").read_text())
    (tmp_path / "test" / "imagesTr").mkdir(parents=True)
    (tmp_path / "test" / "labelsTr").mkdir()
    moved, kept = description["training"][4:], description["training"][:4]
    for entry in moved:  # the last two cases become a separate test dataset
        case = entry["label"].split("/")[-1][: -len(".nii.gz")]
        (tmp_path / "test" / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"not read while training")
        shutil.move(tmp_path / "data" / "labelsTr" / f"{case}.nii.gz", tmp_path / "test" / "labelsTr")
        (tmp_path / "data" / "imagesTr" / f"{case}_0000.nii.gz").unlink()
    write = lambda folder, entries: (folder / "dataset.json").write_text(  # noqa: E731
        json.dumps({**description, "training": entries, "numTraining": len(entries)})
    )
    write(tmp_path / "data", kept)
    write(tmp_path / "test", moved)
    config = parse_config(study_dict(tmp_path, tmp_path / "out", test_dataset=str(tmp_path / "test")), "test")
    context = StudyContext.open(config)
    assert context.folds.fixed and context.fold_count == 1 and len(context.folds.held_out(0)) == 2
    assert sorted(context.folds.training(0)) == sorted(c.case_id for c in context.dataset.cases[:4])
    run_study(config, stages=["train"], progress=False)
    assert (tmp_path / "out" / "models" / "a" / "fold0" / "model.pt").is_file()


def test_train_command_takes_a_split_file_and_trains_on_all(tmp_path, capsys):
    from WSSSCamLib.cli import main

    write_synthetic_dataset(tmp_path / "data", cases=6, shape=(6, 32, 32), seed=3)
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (tmp_path / "data" / "imagesTr").glob("*_0000.nii.gz"))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": cases[:3], "validation": cases[3:4], "test": cases[4:]}))
    common = ["--size", "32", "--epochs", "1", "--patience", "1", "--no-augment", "--device", "cpu"]
    assert (
        main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "split"), "--folds-file", str(split), *common])
        == 0
    )
    card = json.loads((tmp_path / "split" / "fold0" / "model.json").read_text())
    assert card["split"]["train"] == cases[:3] and card["split"]["validation"] == cases[3:4]
    assert card["split"]["test"] == cases[4:] and "test_auc" in card["validation"]  # the CLI measures its test set
    assert main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "all"), "--train-on-all", *common]) == 0
    card = json.loads((tmp_path / "all" / "fold0" / "model.json").read_text())
    assert card["split"]["test"] == [] and card["validation"]["held_out"] == "none (trained on every case)"
    assert len(card["split"]["train"]) + len(card["split"]["validation"]) == 6 and card["split"]["validation"]
    assert "training on every case" in capsys.readouterr().out


def test_the_readme_fixed_split_config_parses_and_its_split_is_20_train_10_test():
    from pathlib import Path

    from WSSSCamLib.study import load_config

    studies = Path(__file__).resolve().parents[3] / "Resources" / "Studies"
    config = load_config(studies / "lgg_fixed_split.yaml")
    assert config.split_file == studies / "lgg_fixed_split.json" and config.folds_file is None
    folds = load_folds(config.split_file)
    assert folds.fixed and len(folds.training(0)) == 20 and len(folds.held_out(0)) == 10
    assert not set(folds.training(0)) & set(folds.held_out(0))
