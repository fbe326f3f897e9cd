"""Refined CAMs in a study (key ``refinements``): configuration errors name the key; a unit's refined counts
equal the refine Pipeline applied by hand to the thresholded map; the threshold of each refined
configuration and the best refined CAM are chosen on the training cases (perturbing held-out counts moves
no choice); a study with refinements runs end to end on generated data; studies without refinements keep
their fingerprint."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.masks import Threshold, apply_threshold, classifier_positive
from WSSSCamLib.metrics import confusion_counts
from WSSSCamLib.refine import Pipeline
from WSSSCamLib.report import best_configurations, headline_table
from WSSSCamLib.schema import ConfigError
from WSSSCamLib.study import aggregate, layout, load_config, parse_config, run_study
from WSSSCamLib.study.context import StudyContext
from WSSSCamLib.study.provenance import config_fingerprint
from WSSSCamLib.study.refined import RefinedConfiguration, parse_refined_method, refined_masks, refined_method
from WSSSCamLib.study.units import Timings, compute_maps, held_out_unit, read_case_slices, training_unit

BASE = {
    "dataset": "data",
    "output": "out",
    "models": [{"name": "a", "architecture": "small-cnn"}],
    "methods": ["grad-cam", "layer-cam"],
}
GOOD = {"members": ["a/grad-cam"], "thresholds": ["p95"], "steps": ["gate"]}


def refused(change, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message[len(f"{path}: ") :]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("gate", "refinements[0]: expected a mapping of keys"),
        ({**GOOD, "step": ["gate"]}, "refinements[0]: unknown key 'step' (did you mean 'steps'?)"),
        ({"members": ["a/grad-cam"], "thresholds": ["p95"]}, "refinements[0]: missing required key 'steps'"),
        ({**GOOD, "members": "a/grad-cam"}, "refinements[0].members: expected a list, got the string 'a/grad-cam'"),
        ({**GOOD, "members": []}, "refinements[0].members: expected at least 1 item(s), got 0"),
        ({**GOOD, "members": ["b/grad-cam"]}, "refinements[0].members[0]: member 'b/grad-cam' is not <model>/<method>"),
        ({**GOOD, "members": ["a/score-cam"]}, "refinements[0].members[0]: member 'a/score-cam': a does not compute"),
        ({**GOOD, "thresholds": ["p200"]}, "refinements[0]: thresholds: "),
        ({**GOOD, "thresholds": [["p95"]]}, "refinements[0].thresholds[0]: expected a threshold name"),
        ({**GOOD, "steps": ["gate | felzenswalb"]}, "refinements[0].steps[0]: refinement: unknown step 'felzenswalb'"),
        ({**GOOD, "steps": ["gate", "slic:n=-3"]}, "refinements[0].steps[1]: slic: setting n must be"),
        ({**GOOD, "steps": ["gate", "gate"]}, "refinements[0]: a/grad-cam at p95 with steps 'gate' is listed twice"),
        ({**GOOD, "steps": [3]}, "refinements[0].steps[0]: expected a pipeline name or a list of step names"),
    ],
)
def test_bad_refinements_are_refused_in_one_line_naming_the_key(tmp_path, entry, expected):
    assert refused({"refinements": [entry]}, tmp_path).startswith(expected)
    assert refused({"refinements": "gate"}, tmp_path).startswith("refinements: expected a list")


def test_refinements_parse_and_leave_the_fingerprint_of_studies_without_them(tmp_path):
    plain = parse_config(BASE, "t", tmp_path)
    steps = [["gate", "components:keep=largest"], "gate | felzenszwalb:scale=50", "none"]
    config = parse_config(
        {**BASE, "refinements": [{**GOOD, "thresholds": ["p95", 0.5], "steps": steps}]}, "t", tmp_path
    )
    (spec,) = config.refinements
    assert spec.members == [("a", "grad-cam")] and [t.name for t in spec.thresholds] == ["p95", "t=0.50"]
    assert [p.describe() for p in spec.steps] == [
        "gate | components:keep=largest,gate=false",
        "gate | felzenszwalb:scale=50,sigma=0.8,min_size=20,pool=mask,min_fraction=0.5",
        "none",
    ]
    assert config.as_dict()["refinements"][0]["steps"][2] == "none"
    # the key absent (or empty) leaves the fingerprint unchanged: units of earlier studies stay valid
    assert config_fingerprint(plain) == config_fingerprint(parse_config({**BASE, "refinements": []}, "t", tmp_path))
    assert config_fingerprint(plain) != config_fingerprint(config)
    label = refined_method("grad-cam++", spec.steps[0])
    assert label == "grad-cam++ + gate | components:keep=largest,gate=false"
    method, pipeline = parse_refined_method(label)
    assert method == "grad-cam++" and pipeline == spec.steps[0]


# --- choices on the training cases, on hand-made rows ------------------------------------------------------

COLUMNS = ["case", "slice", "fold", "role", "model", "method", "result", "kind", "tp", "fp", "fn", "tn"]
GATE = "grad-cam + gate"
FELZ = "grad-cam + gate | felzenszwalb:scale=100,sigma=0.8,min_size=20,pool=mask,min_fraction=0.5"
TRAIN = {  # (model, method, result, kind) -> (tp, fp) per training case of 100 lesion + 900 other voxels
    ("m", "grad-cam", "t=0.50", "threshold"): (60, 10),
    ("m", "grad-cam", "p95", "threshold"): (50, 20),
    ("m", GATE, "t=0.50", "refined"): (60, 5),
    ("m", GATE, "p95", "refined"): (50, 15),
    ("m", FELZ, "t=0.50", "refined"): (70, 5),  # the best refined CAM on the training cases, at t=0.50
    ("m", FELZ, "p95", "refined"): (80, 30),
    ("", "empty", "empty", "empty"): (0, 0),
}


def hand_slices(favour_gate_p95_on_test: bool) -> pd.DataFrame:
    """4 training cases (case-summed) and 3 held-out cases (2 slices each) of one fold; on the held-out
    cases the counts equal the training ones, or, perturbed, the gate at p95 is perfect there and
    everything else poor."""
    rows = []
    for case in ("t1", "t2", "t3", "t4"):
        for (model, method, result, kind), (tp, fp) in TRAIN.items():
            rows.append([case, -1, 0, "train", model, method, result, kind, tp, fp, 100 - tp, 900 - fp])
    for case in ("s1", "s2", "s3"):
        for index in range(2):
            for (model, method, result, kind), (tp, fp) in TRAIN.items():
                if favour_gate_p95_on_test and kind != "empty":
                    tp, fp = (50, 0) if (method, result) == (GATE, "p95") else (5, 40)
                rows.append(
                    [case, index, 0, "test", model, method, result, kind, tp // 2, fp // 2, 50 - tp // 2, 450 - fp // 2]
                )
    return pd.DataFrame(rows, columns=COLUMNS).assign(probability=np.nan, score=np.nan)


def choices(slices):
    grid = aggregate.grid_search_table(slices)
    thresholds = aggregate.training_threshold_table(slices)
    training = aggregate.training_scores(slices, grid, thresholds)
    test = aggregate.test_rows(slices, grid, thresholds)
    headline = headline_table(aggregate.results_table(test), aggregate.case_counts(test), training, resamples=100)
    return thresholds, training, headline


def test_refined_rules_and_the_best_refined_cam_are_chosen_on_training_cases_only():
    honest, perturbed = choices(hand_slices(False)), choices(hand_slices(True))
    for before, after in zip(honest[:2], perturbed[:2]):
        pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))
    thresholds = honest[0].set_index(["kind", "method"])["threshold"].to_dict()
    # hand DSC (Ostrowski 2023): the best pooled rule per configuration on the 4 training cases
    assert thresholds == {
        ("threshold", "grad-cam"): "t=0.50",
        ("refined", GATE): "t=0.50",
        ("refined", FELZ): "t=0.50",
    }
    best_cam = best_configurations(honest[1])
    best_refined = best_configurations(honest[1], refined=True)
    assert best_cam["method"].tolist() == ["grad-cam"] and best_refined["method"].tolist() == [FELZ]
    for headline in (honest[2], perturbed[2]):
        table = headline.set_index("configuration")
        assert table.loc["m / grad-cam", "best"] and not table.loc["m / grad-cam", "best_refined"]
        assert table.loc[f"m / {FELZ}", "best_refined"] and not table.loc[f"m / {FELZ}", "best"]
        assert not table.loc[f"m / {GATE}", "best_refined"] and table["best_refined"].sum() == 1
        assert table.loc[f"m / {FELZ}", "rule_chosen"] == "t=0.50"
    before, after = (h.set_index("configuration") for h in (honest[2], perturbed[2]))
    assert after.loc[f"m / {FELZ}", "dsc"] < before.loc[f"m / {FELZ}", "dsc"]  # the test numbers move
    assert after.loc[f"m / {GATE}", "oracle_rule"] == "p95"  # the test cases' favourite: upper-bound column only
    from WSSSCamLib.report.honest import headline_sentence

    assert "Best refined CAM, chosen on the training cases only" in headline_sentence(honest[2])
    assert f"m / {FELZ} (t=0.50)" in headline_sentence(honest[2])


# --- units and the study end to end, on generated data -------------------------------------------------------

TRAIN_OPTIONS = {"epochs": 1, "patience": 0, "batch_size": 16, "augment": False}
STEPS = ["none", "gate", "gate | felzenszwalb:scale=50", "gate | components:keep=largest", "random_walker"]


def study_dict(root, output, **keys):
    return {
        "dataset": str(root / "data"),
        "output": str(output),
        "folds": 2,
        "seed": 0,
        "device": "cpu",
        "recipe": {"size": 32},
        "models": [{"name": "a", "architecture": "small-cnn", "train": TRAIN_OPTIONS}],
        "methods": ["grad-cam", "layer-cam"],
        "thresholds": ["t=0.5", "p95"],
        "refinements": [{"members": ["a/grad-cam"], "thresholds": ["t=0.5", "p90"], "steps": STEPS}],
        "overlays": 0,
        **keys,
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("refined")
    write_synthetic_dataset(root / "data", cases=4, shape=(5, 32, 32), seed=3)
    config = parse_config(study_dict(root, root / "out"), "test")
    report = run_study(config, progress=False)
    return root, config, report


def test_refined_counts_of_a_unit_equal_the_pipeline_applied_by_hand(study):
    root, config, _ = study
    context = StudyContext.open(config)
    case_id = context.folds.held_out(0)[0]
    case = read_case_slices(context.dataset.case(case_id), context.recipe)
    models = context.fold_models(0, torch.device("cpu"))
    rows, _ = held_out_unit(case, 0, models, config, torch.device("cpu"), Timings())
    maps, probabilities = compute_maps(case, models, config.batch_size, torch.device("cpu"), Timings())
    cam, probability = maps[("a", "grad-cam")], probabilities["a"]
    assert case.images.shape == (len(case.inputs), 1, *case.reference.shape[1:])  # native size, one channel
    refined = rows[rows["kind"] == "refined"]
    assert len(refined) == len(case.inputs) * 2 * len(STEPS)
    for text in STEPS:
        pipeline = Pipeline.parse(text)
        for threshold in (Threshold.parse("t=0.5"), Threshold.parse("p90")):
            by_hand = pipeline(apply_threshold(cam, threshold), cam, case.images, probability)
            expected = confusion_counts(by_hand, case.reference).numpy()
            got = refined[
                (refined["method"] == f"grad-cam + {pipeline.describe()}") & (refined["result"] == threshold.name)
            ]
            np.testing.assert_array_equal(got[["tp", "fp", "fn", "tn"]].to_numpy(), expected)
            np.testing.assert_array_equal(got["slice"].to_numpy(), case.inputs.slice_index.numpy())
            configuration = RefinedConfiguration.from_row("a", f"grad-cam + {text}", threshold.name)
            assert torch.equal(refined_masks(case, cam, probability, configuration), by_hand)
    # 'none' is the plain thresholded map: the same counts as the threshold rows
    plain = rows[(rows["kind"] == "threshold") & (rows["method"] == "grad-cam") & (rows["result"] == "t=0.50")]
    none = refined[(refined["method"] == "grad-cam + none") & (refined["result"] == "t=0.50")]
    np.testing.assert_array_equal(plain[["tp", "fp", "fn", "tn"]].to_numpy(), none[["tp", "fp", "fn", "tn"]].to_numpy())
    # the gate empties the slices the classifier calls negative
    gated = refined[(refined["method"] == "grad-cam + gate") & (refined["result"] == "t=0.50")]
    negative = ~classifier_positive(probability).numpy()
    assert (gated["tp"].to_numpy()[negative] == 0).all() and (gated["fp"].to_numpy()[negative] == 0).all()
    # a training unit sums the same counts over the case
    summed = training_unit(case, 0, models, config, torch.device("cpu"), Timings())
    train_refined = summed[summed["kind"] == "refined"].set_index(["method", "result"])[["tp", "fp", "fn", "tn"]]
    test_sums = refined.groupby(["method", "result"])[["tp", "fp", "fn", "tn"]].sum()
    pd.testing.assert_frame_equal(train_refined.sort_index(), test_sums.sort_index(), check_names=False)


def test_a_study_with_refinements_runs_end_to_end_and_the_choice_ignores_test_cases(study):
    root, config, report = study
    output = config.output
    thresholds = pd.read_csv(output / "train_thresholds.csv")
    refined = thresholds[thresholds["kind"] == "refined"]
    assert len(refined) == 2 * len(STEPS) and set(refined["threshold"]) <= {"t=0.50", "p90"}
    headline = pd.read_csv(output / "headline.csv")
    assert headline["best_refined"].sum() >= 1 and not headline.loc[headline["best_refined"], "best"].any()
    assert (headline.loc[headline["kind"] == "refined", "result"] == "train-threshold").all()
    results = pd.read_csv(output / "results.csv")
    assert {"t=0.50", "p90", "train-threshold"} <= set(results.loc[results["kind"] == "refined", "result"])
    text = report.read_text()
    assert "Best refined CAM, chosen on the training cases only" in text and "best refined on training cases" in text

    # every held-out refined count made to favour the gate at p90: no choice moves, the test numbers do
    for marker in layout.unit_markers(output):
        path = layout.unit_paths_of(marker)["slices"]
        rows = pd.read_parquet(path)
        test = rows["role"] == "test"
        good = test & (rows["method"] == "grad-cam + gate") & (rows["result"] == "p90")
        bad = test & (rows["kind"] == "refined") & ~good
        lesion = rows["tp"] + rows["fn"]
        rows.loc[good, ["tp", "fp", "fn"]] = np.stack([lesion[good], 0 * lesion[good], 0 * lesion[good]], 1)
        rows.loc[bad, ["tp", "fn"]] = np.stack([0 * lesion[bad], lesion[bad]], 1)
        rows.to_parquet(path, index=False)
    run_study(config, stages=["report"], progress=False)
    pd.testing.assert_frame_equal(thresholds, pd.read_csv(output / "train_thresholds.csv"))
    after = pd.read_csv(output / "headline.csv")
    for column in ("best", "best_refined", "rule_chosen", "training_dsc"):
        assert after[column].tolist() == headline[column].tolist()
    moved = after.set_index("configuration")["dsc"] - headline.set_index("configuration")["dsc"]
    refined_names = headline.loc[headline["kind"] == "refined", "configuration"]
    assert (moved[refined_names] != 0).any() and (moved.drop(refined_names) == 0).all()
    gate = after.set_index("configuration").loc["a / grad-cam + gate"]
    assert gate["oracle_rule"] == "p90"


def test_a_study_without_refinements_counts_no_refined_rows(study, tmp_path):
    root, _, _ = study
    config = parse_config(study_dict(root, tmp_path / "out", refinements=[]), "test")
    shutil.copytree(root / "out" / "models", tmp_path / "out" / "models")
    shutil.copy(layout.folds_file(root / "out"), layout.folds_file(tmp_path / "out"))
    run_study(config, stages=["cams"], progress=False, folds=[0])
    slices = pd.concat(
        pd.read_parquet(layout.unit_paths_of(m)["slices"]) for m in layout.unit_markers(tmp_path / "out")
    )
    assert not (slices["kind"] == "refined").any() and (slices["kind"] == "threshold").any()
