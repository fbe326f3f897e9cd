"""``wssscam predict`` end to end: geometry kept for NIfTI, NRRD and DICOM input, files read back by
slicer-core and highdicom, masks equal to the study's, resume after a kill, JSON-lines progress,
bad input refused with one line."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from dicom_series import write_dicom_series

from WSSSCamLib.cli import main
from WSSSCamLib.data.datasets import read_decathlon
from WSSSCamLib.data.readers import read_volume, write_nifti, write_nrrd
from WSSSCamLib.data.recipe import SliceRecipe
from WSSSCamLib.data.segmentation_files import read_seg_nrrd
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.data.volume import Volume, affine_from_geometry
from WSSSCamLib.inference import volume_cams
from WSSSCamLib.masks import Threshold
from WSSSCamLib.metrics import confusion_counts
from WSSSCamLib.predict import PredictOptions, SegmentationRule, cases_from_paths, load_models, predict
from WSSSCamLib.predict import run as run_module
from WSSSCamLib.study import parse_config, run_study
from WSSSCamLib.training import TrainConfig, load_checkpoint
from WSSSCamLib.training.crossval import cross_validate

_c, _s = np.cos(np.radians(20)), np.sin(np.radians(20))
OBLIQUE = affine_from_geometry([0.7, 0.9, 3.0], [12.0, -30.0, 5.0], np.array([[_c, -_s, 0], [_s, _c, 0], [0, 0, 1]]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A generated dataset and one fold's small CNN (2.5D input: 3 channels from one image channel)."""
    root = tmp_path_factory.mktemp("predict")
    data = write_synthetic_dataset(root / "data", cases=4, shape=(6, 32, 32), seed=3, lesion_radii=(0.3, 0.45))
    config = TrainConfig(epochs=8, patience=0, device="cpu", progress=False, augment=False)
    cross_validate(
        read_decathlon(data),
        root / "cv",
        "small-cnn",
        SliceRecipe(size=32, context_channel=0),
        config,
        k=2,
        only_folds=[0],
    )
    return root


def checkpoint(trained):
    return str(trained / "cv" / "fold0" / "model.pt")


def phantom(trained) -> np.ndarray:
    """A positive phantom case's image (6 x 32 x 32), scaled to 0..1000."""
    case = read_decathlon(trained / "data").cases
    labels = [read_volume(c.mask).array.any() for c in case]
    image = read_volume(case[labels.index(True)].images[0]).array
    return (1000 * (image - image.min()) / (image.max() - image.min())).astype(np.float32)


def write_input(trained, tmp_path, kind):
    """The phantom written obliquely as NIfTI, NRRD or a DICOM series; (path, geometry as read back)."""
    array = phantom(trained)
    if kind == "dicom":
        write_dicom_series(tmp_path / "series", count=6, rows=32, columns=32, pixels=array.round().astype(np.uint16))
        path = tmp_path / "series"
    else:
        path = tmp_path / ("scan.nii.gz" if kind == "nifti" else "scan.nrrd")
        (write_nifti if kind == "nifti" else write_nrrd)(Volume(array, OBLIQUE), path)
    return path, read_volume(path)


@pytest.mark.parametrize("kind", ["nifti", "nrrd", "dicom"])
def test_outputs_keep_the_input_geometry_and_read_back(trained, tmp_path, kind):
    import slicer

    from WSSSCamLib.mrml import array_to_volume_node, segment_to_mask

    path, source = write_input(trained, tmp_path, kind)
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(path),
                "--checkpoint",
                checkpoint(trained),
                "--out",
                str(out),
                "--methods",
                "grad-cam,layer-cam",
                "--ensemble",
                "or",
                "--threshold",
                "p90",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    case = "scan" if kind != "dicom" else "series"
    result = json.loads((out / case / "result.json").read_text())
    suffix = ".nii.gz" if kind == "nifti" else ".nrrd"
    assert set(result["files"]["cams"]) == {"grad-cam", "layer-cam"}
    assert all(f.endswith(suffix) for f in [*result["files"]["cams"].values(), *result["files"]["masks"].values()])
    model, card = load_checkpoint(checkpoint(trained), device="cpu")
    expected = volume_cams(source, model, card, ["grad-cam", "layer-cam"], batch_size=16, device="cpu")
    for method, relative in result["files"]["cams"].items():
        cam = read_volume(out / case / relative)
        assert cam.shape_kji == source.shape_kji
        np.testing.assert_allclose(cam.ijk_to_ras, source.ijk_to_ras, atol=1e-5)
        np.testing.assert_allclose(cam.array, expected.maps[method].numpy(), atol=1e-6)
    assert result["segments"] == ["grad-cam p90", "layer-cam p90", "or ensemble p90"]
    masks = {name: read_volume(out / case / relative) for name, relative in result["files"]["masks"].items()}
    for mask in masks.values():
        np.testing.assert_allclose(mask.ijk_to_ras, source.ijk_to_ras, atol=1e-5)
    assert masks["layer-cam p90"].array.any()  # a non-trivial mask is compared below
    np.testing.assert_array_equal(
        masks["or ensemble p90"].array > 0, (masks["grad-cam p90"].array > 0) | (masks["layer-cam p90"].array > 0)
    )
    # slicer-core's own segmentation storage node reads the .seg.nrrd: names and voxels on the input grid
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(out / case / result["files"]["segmentation"]))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())] == result[
        "segments"
    ]
    grid = array_to_volume_node(scene, np.zeros(source.shape_kji, np.float32), source.ijk_to_ras, "grid")
    for name, mask in masks.items():
        np.testing.assert_array_equal(segment_to_mask(scene, node, name, grid), mask.array > 0)
    if kind == "dicom":
        check_dicom_seg(out / case / result["files"]["dicom_seg"], sorted((tmp_path / "series").glob("*.dcm")), masks)
    else:
        assert result["files"]["dicom_seg"] is None


def check_dicom_seg(path, files, masks):
    """Every frame of the DICOM SEG equals the mask's slice of its source image (file k is slice k)."""
    hd = pytest.importorskip("highdicom")
    import pydicom

    seg = hd.seg.segread(path)
    uids = [str(pydicom.dcmread(f).SOPInstanceUID) for f in files]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == list(masks)
    assert str(seg.FrameOfReferenceUID) == str(pydicom.dcmread(files[0]).FrameOfReferenceUID)
    for number, mask in enumerate(masks.values(), start=1):
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, segment_numbers=[number], ignore_spatial_locations=True
        )
        np.testing.assert_array_equal(pixels[..., 0].astype(bool), mask.array > 0)


def test_masks_equal_the_study_for_the_same_configuration(trained, tmp_path):
    """A study's held-out per-slice counts equal the counts of predict's masks (same fold checkpoint,
    same thresholds, empty where the classifier says negative)."""
    output = tmp_path / "study"
    config = parse_config(
        {
            "dataset": str(trained / "data"),
            "output": str(output),
            "folds": 2,
            "seed": 0,
            "device": "cpu",
            "batch_size": 8,
            "recipe": {"size": 32, "context_channel": 0},
            "models": [
                {"name": "a", "architecture": "small-cnn", "train": {"epochs": 2, "patience": 0, "augment": False}}
            ],
            "methods": ["grad-cam", "layer-cam"],
            "thresholds": ["t=0.3", "p95", "otsu"],
            "empty_when_negative": True,
            "overlays": 0,
        },
        "test",
    )
    run_study(config, stages=["train", "cams"], progress=False)
    folds = json.loads((output / "folds.json").read_text())["folds"]
    dataset = read_decathlon(trained / "data")
    compared = 0
    for fold, held_out in enumerate(folds):
        for case_id in held_out:
            study = pd.read_parquet(output / "units" / case_id / f"fold{fold}.slices.parquet")
            reference = torch.from_numpy(read_volume(dataset.case(case_id).mask).array > 0)
            for threshold in ("t=0.3", "p95", "otsu"):
                out = tmp_path / f"predict-{fold}-{threshold}"
                manifest = tmp_path / f"{case_id}.json"
                case = dataset.case(case_id)
                manifest.write_text(
                    json.dumps([{"case": case_id, "images": [str(case.images[0])], "reference": str(case.mask)}])
                )
                assert (
                    main(
                        [
                            "predict",
                            "--manifest",
                            str(manifest),
                            "--checkpoint",
                            str(output / "models" / "a" / f"fold{fold}" / "model.pt"),
                            "--out",
                            str(out),
                            "--methods",
                            "grad-cam,layer-cam",
                            "--threshold",
                            threshold,
                            "--empty-when-negative",
                            "--batch-size",
                            "8",
                            "--progress",
                            "none",
                        ]
                    )
                    == 0
                )
                result = json.loads((out / case_id / "result.json").read_text())
                for method in ("grad-cam", "layer-cam"):
                    name = f"{method} {Threshold.parse(threshold).name}"
                    mask = torch.from_numpy(read_volume(out / case_id / result["files"]["masks"][name]).array > 0)
                    counts = confusion_counts(mask, reference).numpy()  # slices along K (the recipe's axis)
                    rows = study.query(
                        "model == 'a' and method == @method and result == @Threshold.parse(@threshold).name"
                    )
                    np.testing.assert_array_equal(
                        rows.sort_values("slice")[["tp", "fp", "fn", "tn"]].to_numpy(), counts
                    )
                    compared += 1
    assert compared == 4 * 3 * 2


def test_resume_after_a_kill_redoes_only_the_unfinished_case(trained, tmp_path, monkeypatch):
    cases = cases_from_paths([trained / "data"])
    models = load_models([checkpoint(trained)], "cpu")
    options = PredictOptions(("grad-cam",), SegmentationRule(Threshold("otsu")), batch_size=4, device="cpu")
    reference = predict(cases, models, tmp_path / "whole", options)
    out = tmp_path / "killed"
    real = run_module.write_seg_nrrd
    calls = []

    def killed_on_the_second_case(masks, affine, path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            (path.parent / ".x.seg.nrrd.abcd1234.tmp").write_text("half")  # what a kill leaves behind
            raise KeyboardInterrupt
        return real(masks, affine, path, **kwargs)

    monkeypatch.setattr(run_module, "write_seg_nrrd", killed_on_the_second_case)
    with pytest.raises(KeyboardInterrupt):
        predict(cases, models, out, options)
    monkeypatch.setattr(run_module, "write_seg_nrrd", real)
    first, second = cases[0].case_id, cases[1].case_id
    assert (out / first / "result.json").is_file() and not (out / second / "result.json").exists()
    again = predict(cases, models, out, options)
    assert again.skipped == [first] and again.computed == [c.case_id for c in cases[1:]]
    assert not list(out.rglob("*.tmp"))
    pd.testing.assert_frame_equal(again.metrics, reference.metrics)
    for case in cases:
        ours, theirs = (
            read_seg_nrrd(out / case.case_id / f"{case.case_id}.seg.nrrd"),
            read_seg_nrrd(tmp_path / "whole" / case.case_id / f"{case.case_id}.seg.nrrd"),
        )
        assert list(ours[0]) == list(theirs[0]) and all(np.array_equal(ours[0][k], theirs[0][k]) for k in ours[0])
    # other settings redo every case and remove the files the old settings wrote
    changed = predict(
        cases, models, out, PredictOptions(("layer-cam",), SegmentationRule(Threshold("otsu")), device="cpu")
    )
    assert changed.computed == [c.case_id for c in cases]
    assert sorted(p.name for p in (out / first / "cams").iterdir()) == ["small-cnn__layer-cam.nii.gz"]


def test_json_lines_progress_and_metrics_with_references(trained, tmp_path, capsys):
    assert (
        main(
            [
                "predict",
                str(trained / "data"),
                "--checkpoint",
                f"mine={checkpoint(trained)}",
                "--out",
                str(tmp_path / "out"),
                "--methods",
                "grad-cam",
                "--progress",
                "json",
            ]
        )
        == 0
    )
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("case_done") == 4 and "batch" in kinds
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert len(metrics) == 4 and set(metrics["result"]) == {"grad-cam t=0.50"} and metrics["dice"].between(0, 1).all()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["models"][0]["name"] == "mine"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{input}", "--checkpoint", "{tmp}/missing.pt"], r"missing.json: model card missing"),
        (["{input}", "--checkpoint", "{pickled}"], r"pickled.pt: not loadable with weights_only=True"),
        (["{tmp}/nothing.nii.gz", "--checkpoint", "{ckpt}"], r"nothing.nii.gz: no such file or folder"),
        (["{input}", "--checkpoint", "{ckpt}", "--methods", "grad-kam"], r"grad-kam"),
        (["{input}", "--checkpoint", "{ckpt}", "--target-class", "tumour"], r"no class 'tumour'"),
        (["{input}", "--checkpoint", "{ckpt}", "--target-class", "7"], r"target class 7 is outside"),
        (["{input}", "--checkpoint", "{ckpt}", "--threshold", "t=2"], r"fixed mode needs a value t in \[0, 1\]"),
        (
            ["{input}", "--checkpoint", "{ckpt}", "--methods", "seg-grad-cam"],
            r"seg-grad-cam explain segmentation networks; small-cnn is a classifier",
        ),
        (["{input}", "{input2}", "--checkpoint", "{ckpt}", "--reference", "{input}"], r"need exactly one input case"),
        (["{input}", "--checkpoint", "{ckpt}", "--reference", "{other_grid}"], r"other.nii.gz: reference grid"),
        (["{two_channels}", "--checkpoint", "{ckpt}"], r"2 channel\(s\), but the model small-cnn was trained on"),
        (["{input}", "--checkpoint", "{ckpt}", "--ensemble", "and"], r"'and' ensemble needs at least two members"),
        (
            [
                "{input}",
                "--checkpoint",
                "{ckpt}",
                "--methods",
                "grad-cam,layer-cam",
                "--ensemble",
                "and",
                "--member-thresholds",
                "0.5,0.5,0.5",
            ],
            r"3 member thresholds for 2 ensemble members",
        ),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(trained, tmp_path, arguments, message):
    array = phantom(trained)
    write_nifti(Volume(array, OBLIQUE), tmp_path / "scan.nii.gz")
    write_nifti(Volume(array, OBLIQUE), tmp_path / "scan2.nii.gz")
    write_nifti(Volume(np.zeros((6, 16, 16), np.float32), OBLIQUE), tmp_path / "other.nii.gz")
    write_nifti(Volume(np.stack([array, array]), OBLIQUE), tmp_path / "two.nii.gz")
    model, _ = load_checkpoint(checkpoint(trained), device="cpu")
    torch.save(model, tmp_path / "pickled.pt")  # a whole pickled module, not a state dict
    (tmp_path / "pickled.json").write_text((trained / "cv" / "fold0" / "model.json").read_text())
    fill = {
        "input": tmp_path / "scan.nii.gz",
        "input2": tmp_path / "scan2.nii.gz",
        "tmp": tmp_path,
        "ckpt": checkpoint(trained),
        "pickled": tmp_path / "pickled.pt",
        "other_grid": tmp_path / "other.nii.gz",
        "two_channels": tmp_path / "two.nii.gz",
    }
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as stop:
        main(["predict", *[a.format(**fill) for a in arguments], "--out", str(out), "--progress", "none"])
    text = str(stop.value.code)
    assert text.startswith("wssscam predict: ") and "\n" not in text
    assert re.search(message, text), text
    assert not list(out.rglob("result.json")) and not list(out.rglob("*.seg.nrrd"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == before


def test_named_channels_follow_the_model_cards_order(tmp_path, capsys):
    from WSSSCamLib.models.zoo import build_model
    from WSSSCamLib.training.checkpoint import ModelCard, save_checkpoint

    torch.manual_seed(0)
    card = ModelCard(
        "small-cnn", 2, 2, ["normal", "lesion"], ["a", "b"], input_size=[16, 16], recipe={"size": 16, "axis": "K"}
    )
    checkpoint_file = save_checkpoint(build_model("small-cnn", 2, 2), card, tmp_path / "two.pt")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_nifti(Volume(rng.random((3, 16, 16)).astype(np.float32) + 1, OBLIQUE), tmp_path / f"{name}.nii.gz")
    runs = {"card order": (["a", "b"], ["a", "b"]), "swapped": (["b", "a"], ["b", "a"]), "unnamed": (["b", "a"], None)}
    cams = {}
    for label, (files, names) in runs.items():
        entry = {"case": "c", "images": [f"{n}.nii.gz" for n in files], **({"channels": names} if names else {})}
        (tmp_path / "m.json").write_text(json.dumps([entry]))
        out = tmp_path / label.replace(" ", "-")
        assert (
            main(
                [
                    "predict",
                    "--manifest",
                    str(tmp_path / "m.json"),
                    "--checkpoint",
                    str(checkpoint_file),
                    "--out",
                    str(out),
                    "--methods",
                    "layer-cam",
                    "--progress",
                    "none",
                ]
            )
            == 0
        )
        cams[label] = read_volume(out / "c" / "cams" / "small-cnn__layer-cam.nii.gz").array
    np.testing.assert_array_equal(cams["swapped"], cams["card order"])  # reordered by name
    assert not np.array_equal(cams["unnamed"], cams["card order"])  # without names the given order is used
    (tmp_path / "m.json").write_text(
        json.dumps([{"case": "c", "images": ["a.nii.gz", "b.nii.gz"], "channels": ["x", "y"]}])
    )
    assert (
        main(
            [
                "predict",
                "--manifest",
                str(tmp_path / "m.json"),
                "--checkpoint",
                str(checkpoint_file),
                "--out",
                str(tmp_path / "w"),
                "--progress",
                "json",
            ]
        )
        == 0
    )
    warnings = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"warning"' in line]
    assert len(warnings) == 1 and "channels ['x', 'y'] are not the channels ['a', 'b']" in warnings[0]["message"]


def test_kill_9_in_the_middle_then_the_same_command_finishes_the_rest(trained, tmp_path):
    """A real child process killed with SIGKILL after its first committed case; the rerun skips it."""
    import os
    import signal
    import time

    from WSSSCamLib.predict.background import BackgroundPredict

    arguments = [
        str(trained / "data"),
        "--checkpoint",
        checkpoint(trained),
        "--out",
        str(tmp_path / "out"),
        "--methods",
        "grad-cam,smoothgrad-cam++",
        "--batch-size",
        "1",
    ]
    run = BackgroundPredict(arguments).start()
    deadline = time.monotonic() + 300
    while not any(e["event"] == "case_done" for e in run.events):
        run.poll()
        assert run.state == "running" and time.monotonic() < deadline, run.error
        time.sleep(0.01)
    os.killpg(run._process.pid, signal.SIGKILL)
    run._process.wait()
    done = sorted(p.parent.name for p in (tmp_path / "out").glob("*/result.json"))
    assert 1 <= len(done) < 4
    again = BackgroundPredict(arguments).start()
    assert again.wait(timeout=300) == "succeeded", again.error
    finished = [e for e in again.events if e["event"] == "case_done"]
    assert sorted(e["case"] for e in finished if e["skipped"]) == done and len(finished) == 4
    assert len(list((tmp_path / "out").glob("*/result.json"))) == 4 and not list((tmp_path / "out").rglob("*.tmp*"))


def test_test_time_augmentation_is_part_of_the_settings_fingerprint(trained, tmp_path):
    arguments = [
        "predict",
        str(trained / "data"),
        "--checkpoint",
        checkpoint(trained),
        "--out",
        str(tmp_path / "o"),
        "--progress",
        "none",
    ]
    assert main([*arguments, "--methods", "layer-cam"]) == 0
    plain = json.loads((tmp_path / "o" / "phantom_000" / "result.json").read_text())
    assert main([*arguments, "--methods", "layer-cam", "--tta-scales", "1,1.25", "--tta-flip"]) == 0
    fused = json.loads((tmp_path / "o" / "phantom_000" / "result.json").read_text())
    assert fused["fingerprint"] != plain["fingerprint"]  # redone, not skipped
    assert fused["models"]["small-cnn"]["probabilities"] != plain["models"]["small-cnn"]["probabilities"]


def test_refinement_of_every_segment_equals_the_steps_applied_by_hand(trained, tmp_path):
    from WSSSCamLib.data.recipe import SliceRecipe
    from WSSSCamLib.refine import Pipeline

    case = read_decathlon(trained / "data").cases[1]
    common = ["predict", str(case.images[0]), "--checkpoint", checkpoint(trained), "--methods", "grad-cam,layer-cam"]
    common += ["--threshold", "p80", "--ensemble", "or", "--progress", "none"]
    steps = "slic:n=30,compactness=0.1 | components:keep=largest"
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "refined"), "--refine", steps]) == 0
    name = case.images[0].name.removesuffix(".nii.gz")
    plain = json.loads((tmp_path / "plain" / name / "result.json").read_text())
    refined = json.loads((tmp_path / "refined" / name / "result.json").read_text())
    assert refined["segments"] == [f"{s} refined" for s in plain["segments"]]
    _, card = load_checkpoint(checkpoint(trained), device="cpu")
    image, _ = SliceRecipe.from_card(card).preprocess()(read_volume(case.images[0]), None)
    images = torch.from_numpy(image.array if image.array.ndim == 4 else image.array[None]).movedim(
        1, 0
    )  # K x C x J x I
    pipeline = Pipeline.parse(steps)
    probabilities = torch.tensor(plain["models"]["small-cnn"]["probabilities"])
    maps = {
        m: torch.from_numpy(read_volume(tmp_path / "plain" / name / f).array) for m, f in plain["files"]["cams"].items()
    }
    changed = False
    for segment, method in (("grad-cam p80", "grad-cam"), ("layer-cam p80", "layer-cam"), ("or ensemble p80", None)):
        mask = torch.from_numpy(read_volume(tmp_path / "plain" / name / plain["files"]["masks"][segment]).array > 0)
        cam = maps[method] if method else (maps["grad-cam"] + maps["layer-cam"]) / 2
        expected = pipeline(mask, cam, images, probabilities)
        got = read_volume(tmp_path / "refined" / name / refined["files"]["masks"][f"{segment} refined"]).array > 0
        np.testing.assert_array_equal(got, expected.numpy())
        changed = changed or not np.array_equal(got, mask.numpy())
    assert changed  # the steps did something on this case
    with pytest.raises(SystemExit, match="refinement: unknown step 'blur'"):
        main([*common, "--out", str(tmp_path / "bad"), "--refine", "blur"])


def test_a_rewrite_killed_midway_is_redone_and_edits_to_inputs_or_cards_redo_a_case(trained, tmp_path, monkeypatch):
    import os
    import shutil

    array = phantom(trained)
    scan = tmp_path / "scan.nii"  # uncompressed: an edit keeps the file size
    write_nifti(Volume(array, OBLIQUE), scan)
    shutil.copy(checkpoint(trained), tmp_path / "m.pt")
    shutil.copy(trained / "cv" / "fold0" / "model.json", tmp_path / "m.json")
    models = load_models([tmp_path / "m.pt"], "cpu")
    a = PredictOptions(("layer-cam",), SegmentationRule(Threshold("fixed", 0.5)), device="cpu")
    b = PredictOptions(("layer-cam",), SegmentationRule(Threshold("otsu")), device="cpu")
    out = tmp_path / "out"
    predict(cases_from_paths([scan]), models, out, a)
    first = read_volume(out / "scan" / "cams" / "small-cnn__layer-cam.nii.gz").array
    (out / "scan" / "cams" / "stray.nii.gz").write_bytes(b"left by a killed run")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "write_seg_nrrd", killed)
    with pytest.raises(KeyboardInterrupt):
        predict(cases_from_paths([scan]), models, out, b)  # killed while rewriting the case with other settings
    monkeypatch.undo()
    assert not (out / "scan" / "result.json").exists()  # uncommitted, so A cannot mistake B's files for its own
    assert predict(cases_from_paths([scan]), models, out, a).computed == ["scan"]
    np.testing.assert_array_equal(read_volume(out / "scan" / "cams" / "small-cnn__layer-cam.nii.gz").array, first)
    assert not (out / "scan" / "cams" / "stray.nii.gz").exists()  # files no committed run lists are removed
    assert predict(cases_from_paths([scan]), models, out, a).skipped == ["scan"]
    write_nifti(Volume(array[::-1].copy(), OBLIQUE), scan)  # same size, other voxels
    os.utime(scan, ns=(scan.stat().st_atime_ns, scan.stat().st_mtime_ns + 10**9))
    assert predict(cases_from_paths([scan]), models, out, a).computed == ["scan"]
    card = json.loads((tmp_path / "m.json").read_text())
    card["fusion_layers"] = ["features.2", "features"]  # an edited card: other settings, other outputs
    (tmp_path / "m.json").write_text(json.dumps(card))
    assert predict(cases_from_paths([scan]), load_models([tmp_path / "m.pt"], "cpu"), out, a).computed == ["scan"]


def test_a_region_is_used_only_by_the_seg_methods(trained, tmp_path):
    array = phantom(trained)
    write_nifti(Volume(array, OBLIQUE), tmp_path / "scan.nii.gz")
    common = ["predict", str(tmp_path / "scan.nii.gz"), "--checkpoint", checkpoint(trained), "--progress", "none"]
    assert main([*common, "--out", str(tmp_path / "a"), "--box", "0,0,0,8,8,2"]) == 0  # ignored by Grad-CAM
    with pytest.raises(SystemExit, match="seg-grad-cam explain segmentation networks; small-cnn is a classifier"):
        main([*common, "--out", str(tmp_path / "b"), "--methods", "seg-grad-cam", "--box", "0,0,0,8,8,2"])
    with pytest.raises(SystemExit, match="region_box"):
        main([*common, "--out", str(tmp_path / "c"), "--methods", "seg-grad-cam", "--box=-2,0,0,8,8,2"])


def test_dicom_seg_of_multiframe_or_unplaced_sources_is_refused_by_name(tmp_path):
    import pydicom

    from WSSSCamLib.data.segmentation_files import SegmentationFileError, write_dicom_seg

    files = write_dicom_series(tmp_path / "series", count=2)
    dataset = pydicom.dcmread(files[1])
    del dataset.ImagePositionPatient
    dataset.save_as(files[1])
    with pytest.raises(
        SegmentationFileError, match=r"im1.dcm is an enhanced multi-frame image \(or has no ImagePositionPatient\)"
    ):
        write_dicom_seg({"a": np.zeros((2, 4, 6), bool)}, np.eye(4), files, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()
