"""The ``segment`` stage end to end on a tiny generated study (2 folds, 2 epochs, 32 px): report rows and
gap_closed.csv, resume per network x fold, a killed training counted as nothing, held-out cases never read
for pseudo-labels, and a produced checkpoint run through ``wssscam predict``'s segmentation path."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from WSSSCamLib.cli import main
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.errors import NotReadyError
from WSSSCamLib.study import parse_config, run_study
from WSSSCamLib.study.context import StudyContext
from WSSSCamLib.study.layout import segment_paths, unit_markers, unit_paths_of
from WSSSCamLib.study.provenance import config_fingerprint
from WSSSCamLib.study.pseudo_labels import choose_source, fold_training_slices, label_quality, selection_dice
from WSSSCamLib.study.stages import segment
from WSSSCamLib.training.segmentation import IGNORE

NETWORKS = ("pseudo-label", "self-trained", "supervised")


def config_dict(root):
    return {
        "dataset": str(root / "data"),
        "output": str(root / "out"),
        "folds": 2,
        "seed": 0,
        "device": "cpu",
        "recipe": {"size": 32},
        "models": [{"name": "a", "architecture": "small-cnn", "train": {"epochs": 2, "patience": 0, "batch_size": 16}}],
        "methods": ["grad-cam"],
        "thresholds": ["t=0.3", "t=0.5", "p95"],
        "overlays": 0,
        "segmentation": {"size": 32, "epochs": 2, "batch_size": 8, "ignore_band": 0.05, "self_training": True},
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment")
    write_synthetic_dataset(root / "data", cases=6, shape=(6, 32, 32), seed=5, lesion_radii=(0.3, 0.45))
    config = parse_config(config_dict(root), "test")
    run_study(config, stages=["train", "cams", "segment", "report"], progress=False)
    return root


def test_report_rows_and_gap_closed(study):
    out = study / "out"
    headline = pd.read_csv(out / "headline.csv")
    networks = headline[headline["kind"] == "segmentation"]
    assert list(networks["configuration"]) == [
        "pseudo-label U-Net",
        "self-trained U-Net",
        "supervised U-Net (fully supervised upper bound)",
    ]
    for metric in ("dsc", "fg_dice", "dice_abnormal", "dice_case"):
        assert networks[metric].notna().all()
        # the existing case-level bootstrap; with 3 held-out cases a resample may lack lesion slices (NaN interval)
        if metric != "dice_abnormal":
            assert (networks[f"{metric}_low"] <= networks[metric] + 1e-12).all()
            assert (networks[f"{metric}_high"] >= networks[metric] - 1e-12).all()
    table = pd.read_csv(out / "segment.csv")
    pseudo = table[table["network"] == "pseudo-label U-Net"]
    assert pseudo["label_fg_dice"].between(0, 1).all() and (pseudo["label_dice_abnormal"].dropna() <= 1).all()
    assert (table.loc[table["network"] == "supervised U-Net", "label_fg_dice"] == 1).all()
    gap = pd.read_csv(out / "gap_closed.csv")
    assert set(gap["network"]) == {"pseudo-label U-Net", "self-trained U-Net"} and len(gap) == 8
    assert set(gap["anchor"]) == {"best CAM"}  # no refinements in this study: one anchor
    best = headline[headline["best"]].iloc[0]
    supervised = networks.iloc[2]
    for row in gap.itertuples():
        assert row.anchor_configuration == best["configuration"]
        assert row.anchor_value == pytest.approx(best[row.metric]) and row.supervised == pytest.approx(
            supervised[row.metric]
        )
        if row.supervised > row.anchor_value:
            assert row.gap_closed == pytest.approx(
                (row.network_value - row.anchor_value) / (row.supervised - row.anchor_value)
            )
    # one row per held-out slice and network, as many as the Empty rows of the units
    slices = pd.read_parquet(out / "slices.parquet")
    empty = slices[(slices["kind"] == "empty") & (slices["role"] == "test")]
    for name in ("pseudo-label U-Net", "self-trained U-Net", "supervised U-Net"):
        rows = slices[slices["model"] == name]
        assert len(rows) == len(empty) and set(rows["result"]) == {"argmax"}
        merged = rows.merge(empty, on=["case", "slice", "fold"], suffixes=("", "_ref"))
        assert ((merged["tp"] + merged["fn"]) == (merged["tp_ref"] + merged["fn_ref"])).all()  # same references
    html = (out / "report.html").read_text()
    assert "fully supervised upper bound" in html and "Gap closed" in html
    # the key is not part of the units' fingerprint: finished CAM units stay valid
    without = config_dict(study)
    del without["segmentation"]
    assert config_fingerprint(parse_config(without, "t")) == config_fingerprint(parse_config(config_dict(study), "t"))
    result = json.loads(segment_paths(out, "pseudo-label", 0)["result"].read_text())
    assert result["labels"]["slices"] == result["labels"]["negative"] + result["labels"]["positive_kept"]
    log = pd.read_csv(segment_paths(out, "supervised", 0)["log"])
    assert list(log.columns) == ["epoch", "loss", "cross_entropy", "dice_loss", "seconds"] and len(log) == 2


def _stamps(out):
    return {(n, f): segment_paths(out, n, f)["result"].stat().st_mtime_ns for n in NETWORKS for f in (0, 1)}


def test_resume_recomputes_only_the_removed_result(study, monkeypatch):
    out = study / "out"
    config = parse_config(config_dict(study), "test")
    before = _stamps(out)
    assert run_study(config, stages=["segment"], progress=False) is None
    assert _stamps(out) == before  # nothing redone
    segment_paths(out, "supervised", 1)["result"].unlink()
    trained = []
    real = segment.train_segmentation

    def spy(images, labels, config_, log_path=None, on_epoch=None):
        trained.append(str(log_path))
        return real(images, labels, config_, log_path, on_epoch)

    monkeypatch.setattr(segment, "train_segmentation", spy)
    run_study(config, stages=["segment"], progress=False)
    assert trained == [str(segment_paths(out, "supervised", 1)["log"])]
    after = _stamps(out)
    assert all(after[k] == before[k] for k in before if k != ("supervised", 1))


def test_switching_networks_on_or_off_keeps_the_others_results(study):
    """``self_training`` / ``supervised`` decide which networks run, not what one computes: turning the
    self-trained U-Net off (or on again later) leaves the pseudo-label and supervised results current."""
    out = study / "out"
    values = config_dict(study)
    values["segmentation"] = {**values["segmentation"], "self_training": False}
    context = StudyContext.open(parse_config(values, "test"), None)
    for fold in (0, 1):
        expected, _ = segment.expected_fingerprints(context, fold, segment.training_rows(context, fold))
        assert set(expected) == {"pseudo-label", "supervised"}
        assert all(segment.is_current(out, network, fold, expected[network]) for network in expected)


def test_a_killed_training_counts_as_nothing(study, monkeypatch):
    out = study / "out"
    config = parse_config(config_dict(study), "test")
    paths = segment_paths(out, "pseudo-label", 0)
    paths["result"].unlink()
    real = segment.train_segmentation

    def killed(images, labels, config_, log_path=None, on_epoch=None):
        def die(record):
            raise KeyboardInterrupt("killed")

        return real(images, labels, config_, log_path, die)

    monkeypatch.setattr(segment, "train_segmentation", killed)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, stages=["segment"], progress=False)
    assert not paths["result"].exists()
    with pytest.raises(NotReadyError, match="pseudo-label/fold0"):
        run_study(config, stages=["report"], progress=False)
    monkeypatch.setattr(segment, "train_segmentation", real)
    run_study(config, stages=["segment", "report"], progress=False)
    context = StudyContext.open(config)
    assert segment.stale_results(context, lambda fold: segment.training_rows(context, fold)) == []


def test_held_out_cases_never_make_pseudo_labels(study, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    config = parse_config(config_dict(copy), "test")
    context = StudyContext.open(config)
    rows = segment.training_rows(context, 0)
    choice = choose_source(config, rows, 0)
    first = fold_training_slices(context, 0, choice)
    # corrupt every held-out case's files of fold 0 and make their unit rows favour something else
    held_out = set(context.folds.held_out(0))
    for case in context.dataset.cases:
        if case.case_id in held_out:
            for path in [*case.images, case.mask]:
                path.write_bytes(b"corrupt")
    for marker in unit_markers(config.output):
        record = json.loads(marker.read_text())
        if record["case"] in held_out and record["fold"] == 0:
            table = unit_paths_of(marker)["slices"]
            frame = pd.read_parquet(table)
            frame.loc[frame["result"] == "p95", "tp"] += 10_000
            frame.to_parquet(table, index=False)
    context = StudyContext.open(config)
    again = choose_source(config, segment.training_rows(context, 0), 0)
    second = fold_training_slices(context, 0, again)
    assert again == choice
    assert torch.equal(first.pseudo, second.pseudo) and torch.equal(first.keep, second.keep)
    assert torch.equal(first.images, second.images)
    assert set(first.case_ids) == set(context.folds.training(0)) and not set(first.case_ids) & held_out
    negative = first.slice_labels == 0
    assert first.pseudo[negative].eq(0).all()  # negative slices: all background
    assert set(first.pseudo.unique().tolist()) <= {0, 1, IGNORE}


def predict_arguments(root, case, checkpoint, out, methods=""):
    """``wssscam predict`` of one generated case with its reference and a U-Net checkpoint named ``unet``."""
    data = root / "data"
    return [
        "predict",
        str(data / "imagesTr" / f"{case}_0000.nii.gz"),
        "--reference",
        str(data / "labelsTr" / f"{case}.nii.gz"),
        "--checkpoint",
        f"unet={checkpoint}",
        "--methods",
        methods,
        "--out",
        str(out),
        "--progress",
        "none",
    ]


def test_the_checkpoint_runs_through_predict(study, tmp_path):
    out = study / "out"
    paths = segment_paths(out, "pseudo-label", 0)
    card = json.loads(paths["card"].read_text())
    assert card["architecture"] == "monai-unet" and card["class_names"] == ["background", "abnormal"]
    case = card["split"]["test"][0]
    assert main(predict_arguments(study, case, paths["checkpoint"], tmp_path / "predict")) == 0
    metrics = pd.read_csv(tmp_path / "predict" / "metrics.csv")
    assert list(metrics["result"]) == ["unet segmentation"]
    rows = pd.read_parquet(paths["slices"])
    counts = rows[rows["case"] == case][["tp", "fp", "fn"]].sum()
    expected = 2 * counts["tp"] / (2 * counts["tp"] + counts["fp"] + counts["fn"]) if counts.sum() else 1.0
    assert metrics["dice"][0] == pytest.approx(expected)
    assert int(metrics["voxels"][0]) == int(counts["tp"] + counts["fp"])
    assert np.isfinite(metrics["dice"][0])


def test_merge_carries_the_segment_results(study, tmp_path):
    from WSSSCamLib.study.merge import merge_outputs

    out = study / "out"
    merge_outputs(tmp_path / "merged", [out])
    for network in NETWORKS:
        for fold in (0, 1):
            for name, path in segment_paths(out, network, fold).items():
                copied = segment_paths(tmp_path / "merged", network, fold)[name]
                assert copied.read_bytes() == path.read_bytes(), (network, fold, name)


def test_the_readme_lgg_wsss_configurations_parse_and_differ_only_in_epochs_and_output():
    """The README's pre-registered LGG pipeline and its post-hoc 30-epoch run: same CAM units, same U-Net
    settings but the epochs."""
    from pathlib import Path

    from WSSSCamLib.study import load_config
    from WSSSCamLib.study.provenance import config_fingerprint

    studies = Path(__file__).resolve().parents[3] / "Resources" / "Studies"
    first, second = load_config(studies / "lgg_wsss.yaml"), load_config(studies / "lgg_wsss_e30.yaml")
    assert config_fingerprint(first) == config_fingerprint(second)
    assert first.segmentation.source == "best-refined" and first.segmentation.supervised
    assert (first.segmentation.epochs, second.segmentation.epochs) == (15, 30)
    assert first.output.name == "lgg-wsss" and second.output.name == "lgg-wsss-e30"
    assert {**vars(first.segmentation), "epochs": 30} == vars(second.segmentation)


def test_a_list_of_sources_trains_on_the_candidate_closest_to_the_training_masks(study, tmp_path):
    """Two candidate sources: each one's labels are made on the fold's training cases, the one with the highest
    lesion-slice Dice against their masks trains the U-Net, and the report lists every candidate."""
    out = tmp_path / "out"
    shutil.copytree(study / "out", out)  # the same units, in another output folder
    sources = ["a/grad-cam@t=0.3", "a/grad-cam@p95"]
    config = parse_config(_with_source(study, sources, out), "test")
    run_study(config, stages=["segment", "report"], progress=False)
    context = StudyContext.open(config)
    table = pd.read_csv(out / "pseudo_label_candidates.csv")
    assert list(table["fold"]) == [0, 0, 1, 1] and table.groupby("fold")["chosen"].sum().tolist() == [1, 1]
    for fold in (0, 1):
        single = [
            fold_training_slices(
                context, fold, choose_source(parse_config(_with_source(study, s, out), "t"), None, fold)
            )
            for s in sources
        ]
        quality = [label_quality(d.pseudo[d.keep], d.reference[d.keep])["dice_abnormal"] for d in single]
        scores = [selection_dice(d.pseudo, d.keep, d.reference) for d in single]
        rows = table[table["fold"] == fold]
        assert rows["dice_abnormal"].tolist() == pytest.approx(quality, nan_ok=True)
        assert rows["selection_dice"].tolist() == pytest.approx(scores, nan_ok=True)
        chosen = int(np.nanargmax(scores))  # the first of equal values, as pick_labels
        assert rows["chosen"].tolist() == [i == chosen for i in range(2)]
        result = json.loads(segment_paths(out, "pseudo-label", fold)["result"].read_text())
        assert result["source"].startswith(single[chosen].choice.describe())
        assert result["training_slices"] == int(single[chosen].keep.sum())
        assert result["settings"]["source"] == [c.describe() for c in single_choices(study, sources, fold, out)]
        assert result["settings"]["choice"] == segment.CANDIDATE_RULE
    assert "Pseudo-label candidates" in (out / "report.html").read_text()


def _with_source(root, source, out):
    values = {**config_dict(root), "output": str(out)}
    values["segmentation"] = {**values["segmentation"], "source": source, "self_training": False}
    return values


def single_choices(root, sources, fold, out):
    return [choose_source(parse_config(_with_source(root, s, out), "t"), None, fold) for s in sources]


def test_the_readme_lgg_labels_configuration_differs_from_the_30_epoch_run_only_where_it_says():
    """The third LGG run: the e30 run's settings plus image-based refinements, a list of candidate sources and
    self-training."""
    from pathlib import Path

    from WSSSCamLib.study import load_config

    studies = Path(__file__).resolve().parents[3] / "Resources" / "Studies"
    e30, labels = load_config(studies / "lgg_wsss_e30.yaml"), load_config(studies / "lgg_wsss_labels.yaml")
    assert labels.refinements[:2] == e30.refinements and len(labels.refinements) == 3
    assert labels.segmentation.sources()[0] == "best-refined" and len(labels.segmentation.sources()) == 5
    same = {"source": None, "self_training": None}
    assert {**vars(labels.segmentation), **same} == {**vars(e30.segmentation), **same}
    assert labels.segmentation.self_training and labels.output.name == "lgg-wsss-labels"
    for key in ("dataset", "folds_file", "models", "methods", "thresholds", "ensembles", "recipe", "faithfulness"):
        assert getattr(labels, key) == getattr(e30, key), key


def test_a_3d_unet_option_trains_on_stacks_and_runs_through_predict(study, tmp_path):
    """``dims: 3``: every network is a 3D U-Net on each case's stack of slices; its rows are the held-out
    slices, its card a 3D slice-recipe network that ``wssscam predict`` runs to the same counts."""
    out = tmp_path / "out"
    shutil.copytree(study / "out", out, ignore=shutil.ignore_patterns("segment"))
    values = {**config_dict(study), "output": str(out)}
    values["segmentation"] = {**values["segmentation"], "dims": 3, "depth": 8}
    config = parse_config(values, "test")
    run_study(config, stages=["segment", "report"], progress=False)
    slices = pd.read_parquet(out / "slices.parquet")
    empty = slices[(slices["kind"] == "empty") & (slices["role"] == "test")]
    for name in ("pseudo-label U-Net", "self-trained U-Net", "supervised U-Net"):
        rows = slices[slices["model"] == name]
        assert len(rows) == len(empty) and set(rows["method"]) == {"monai-unet-3d"}
    paths = segment_paths(out, "pseudo-label", 0)
    card = json.loads(paths["card"].read_text())
    assert card["spatial_dims"] == 3 and card["architecture"] == "monai-unet"
    result = json.loads(paths["result"].read_text())
    assert result["training_windows"] == 3 and result["training_slices"] == result["labels"]["slices"] - (
        result["labels"]["dropped_probability"] + result["labels"]["dropped_area"]
    )  # 3 training cases of 6 slices, one padded 8-slice window each
    case = card["split"]["test"][0]
    with pytest.raises(SystemExit, match="do not explain a 3D U-Net over the stack"):
        main(predict_arguments(study, case, paths["checkpoint"], tmp_path / "predict", "seg-grad-cam"))
    assert main(predict_arguments(study, case, paths["checkpoint"], tmp_path / "predict")) == 0
    metrics = pd.read_csv(tmp_path / "predict" / "metrics.csv")
    assert list(metrics["result"]) == ["unet segmentation"]
    counts = pd.read_parquet(paths["slices"]).query("case == @case")[["tp", "fp", "fn"]].sum()
    assert int(metrics["voxels"][0]) == int(counts["tp"] + counts["fp"])
    # the 2D settings leave the 3D keys out of their fingerprint: the 2D study's results are still current
    context = StudyContext.open(parse_config(config_dict(study), "test"))
    assert segment.stale_results(context, lambda fold: segment.training_rows(context, fold)) == []
    with pytest.raises(Exception, match="segmentation.depth: 12 is not a multiple of 8"):
        parse_config({**values, "segmentation": {**values["segmentation"], "depth": 12}}, "test")


def test_the_readme_lgg_3d_configuration_differs_from_the_30_epoch_run_only_in_the_network():
    """The fourth LGG run: the e30 run's CAM units and pseudo-label settings, a 3D U-Net on 16-slice windows."""
    from pathlib import Path

    from WSSSCamLib.study import load_config
    from WSSSCamLib.study.provenance import config_fingerprint

    studies = Path(__file__).resolve().parents[3] / "Resources" / "Studies"
    e30, three_d = load_config(studies / "lgg_wsss_e30.yaml"), load_config(studies / "lgg_wsss_3d.yaml")
    assert config_fingerprint(e30) == config_fingerprint(three_d)  # the same CAM units
    changed = {"dims": 3, "depth": 16, "batch_size": 4}
    assert vars(three_d.segmentation) == {**vars(e30.segmentation), **changed}
    assert three_d.output.name == "lgg-wsss-3d"
