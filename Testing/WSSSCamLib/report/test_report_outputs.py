"""Report figures (valid, non-blank PNGs) and the HTML report, from small hand-made study tables."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from WSSSCamLib.report import (
    agreement_boxplots,
    correlation_heatmap,
    correlation_table,
    threshold_curves,
    threshold_grid_heatmap,
    write_report,
)

ENSEMBLE = "and(small-cnn/grad-cam, resnet18/grad-cam)"
POOLED = {  # (model, method, kind, result) -> pooled_dsc_miou; pooled_fg_dice = value - 0.3
    ("", "empty", "empty", "empty"): 0.646,
    ("small-cnn", "grad-cam", "threshold", "t=0.30"): 0.600,
    ("small-cnn", "grad-cam", "threshold", "t=0.50"): 0.670,
    ("small-cnn", "grad-cam", "threshold", "t=0.70"): 0.650,
    ("resnet18", "grad-cam", "threshold", "t=0.30"): 0.620,
    ("resnet18", "grad-cam", "threshold", "t=0.50"): 0.640,
    ("resnet18", "grad-cam", "threshold", "t=0.70"): 0.685,
    (ENSEMBLE, "ensemble", "ensemble", "t=0.50|t=0.70"): 0.703,
}
AREAS = {"small-cnn": [10.0, 20.0, 30.0, 40.0, 50.0], "resnet18": [50.0, 45.0, 30.0, 35.0, 10.0]}


def make_results() -> pd.DataFrame:
    rows = []
    for (model, method, kind, result), value in POOLED.items():
        for metric, v in (("pooled_dsc_miou", value), ("pooled_fg_dice", round(value - 0.3, 3))):
            rows.append(
                {
                    "case": "ALL",
                    "fold": -1,
                    "model": model,
                    "method": method,
                    "result": result,
                    "kind": kind,
                    "metric": metric,
                    "value": v,
                }
            )
    for model, areas in AREAS.items():
        for i, area in enumerate(areas):
            rows.append(
                {
                    "case": f"c{i}",
                    "fold": i % 2,
                    "model": model,
                    "method": "grad-cam",
                    "result": "t=0.50",
                    "kind": "threshold",
                    "metric": "area_voxels",
                    "value": area,
                }
            )
    return pd.DataFrame(rows)


def make_agreement() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for kind, groups in (("methods", ["small-cnn", "resnet18"]), ("models", ["grad-cam", "grad-cam++", "score-cam"])):
        for g, group in enumerate(groups):
            for s, value in enumerate(rng.uniform(0.2 + 0.2 * g, 0.6 + 0.2 * g, 12)):
                for result in ("t=0.50", "t=0.70"):
                    rows.append(
                        {
                            "case": "c0",
                            "slice": s,
                            "fold": 0,
                            "kind": kind,
                            "group": group,
                            "result": result,
                            "value": float(value),
                        }
                    )
    return pd.DataFrame(rows)


def make_grid(chosen: bool = True) -> pd.DataFrame:
    rows = []
    ts = [0.3, 0.5, 0.7]
    for fold in (0, 1):
        for t1 in ts:
            for t2 in ts:
                rows.append(
                    {
                        "fold": fold,
                        "ensemble": ENSEMBLE,
                        "rule": "and",
                        "t1": t1,
                        "t2": t2,
                        "score": 0.5 + 0.1 * t1 + 0.2 * t2 + 0.01 * fold,
                        "chosen": chosen and (t1, t2) == (0.7, 0.7),
                    }
                )
        for t1 in ts:
            rows.append(
                {
                    "fold": fold,
                    "ensemble": "mean(small-cnn/grad-cam, resnet18/grad-cam)",
                    "rule": "mean",
                    "t1": t1,
                    "t2": math.nan,
                    "score": 0.6 - 0.1 * abs(t1 - 0.5),
                    "chosen": chosen and t1 == 0.5,
                }
            )
    return pd.DataFrame(rows)


CASES = pd.DataFrame(
    {
        "case": [f"c{i}" for i in range(5)],
        "fold": [0, 1, 0, 1, 0],
        "label": 1,
        "has_mask": True,
        "slices": [20, 21, 22, 23, 24],
        "liquid_loss": [1.0, 2.0, 3.0, 5.0, 4.0],
    }
)


def check_png(path) -> np.ndarray:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 150
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 0
    return pixels


def red_pixels(pixels: np.ndarray) -> int:
    return int(((pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).sum())


def test_figures_are_written_as_non_blank_pngs(tmp_path):
    paths = [
        agreement_boxplots(make_agreement(), tmp_path / "agreement.png"),
        threshold_curves(make_results(), tmp_path / "curves.png"),
        correlation_heatmap(correlation_table(make_results(), CASES, "liquid_loss"), tmp_path / "correlation.png"),
        threshold_grid_heatmap(make_grid(), tmp_path / "grid_fold1.png", fold=1),
    ]
    for path in paths:
        assert path.parent == tmp_path
        check_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agreement.png",
        "correlation.png",
        "curves.png",
        "grid_fold1.png",
    ]
    with pytest.raises(ValueError, match="t=0.50"):
        agreement_boxplots(make_agreement(), tmp_path / "none.png", result="t=0.90")
    with pytest.raises(ValueError, match="fold 5"):
        threshold_grid_heatmap(make_grid(), tmp_path / "none.png", fold=5)
    assert not (tmp_path / "none.png").exists()


def test_grid_heatmap_marks_the_chosen_cells_in_red(tmp_path):
    marked = check_png(threshold_grid_heatmap(make_grid(chosen=True), tmp_path / "marked.png"))
    plain = check_png(threshold_grid_heatmap(make_grid(chosen=False), tmp_path / "plain.png"))
    assert red_pixels(plain) == 0 and red_pixels(marked) > 50


def test_report_contains_tables_figures_and_escaped_text(tmp_path):
    out = tmp_path / "study"
    figure = agreement_boxplots(make_agreement(), out / "figures" / "agreement.png")
    outside = tmp_path / "elsewhere" / "overlay c0.png"
    outside.parent.mkdir()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(outside)
    provenance = {
        "config": {"models": ["small-cnn", "resnet18"], "note": "<b>bold</b> & co"},
        "versions": {"python": "3.12", "torch": "2.14.1"},
        "checkpoints": {"small-cnn": "ab" * 32},
        "started": "2025-01-01T00:00:00Z",
        "command": ["wssscam", "study", "--config", "s.yaml"],
    }
    path = write_report(
        out,
        make_results(),
        make_agreement(),
        make_grid(),
        CASES,
        provenance,
        {"Agreement <A>": figure},
        overlays=[outside],
        title="Study <A&B>",
    )
    assert path == out / "report.html"
    text = path.read_text(encoding="utf-8")
    assert "<title>Study &lt;A&amp;B&gt;</title>" in text and "Study <A&B>" not in text
    # without the training-case choices (no headline table) nothing is named best: the test results never choose
    assert "No choices made on training cases are available, so no configuration is named best." in text
    assert "Best configuration:" not in text
    for value in ("0.685", "0.670", "0.600"):  # threshold table values (descriptive)
        assert f"<td>{value}</td>" in text
    thresholds = text[text.index('<section id="thresholds">') : text.index('<section id="figures">')]
    assert (
        "<th>model</th>\n      <th>method</th>\n      <th>t=0.30</th>" in thresholds and "<th></th>" not in thresholds
    )
    assert '<img src="figures/agreement.png" alt="Agreement &lt;A&gt;">' in text
    assert 'src="../elsewhere/overlay%20c0.png"' in text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;amp; co" not in text and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text
    assert "<b>bold</b>" not in text
    assert "ab" * 32 in text and "wssscam study --config s.yaml" in text
    assert "both empty, Dice = IoU = 1" in text and "2 mIoU / (1 + mIoU)" in text
    assert "liquid_loss" in text and "5 cases in 2 folds, 110 slices." in text
    assert "<script" not in text and "http://" not in text and "https://" not in text and "<link" not in text
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_report(out, make_results(), None, None, None, {}, {"x": tmp_path / "missing.png"})
    assert path.read_text(encoding="utf-8") == text  # the failed call left the report untouched


def test_abnormal_slices_is_a_standard_case_column_not_an_external_measure(tmp_path):
    """The study's cases table always has abnormal_slices; without a measures CSV (the LGG study) the
    report has no external measure, so no CAM area is correlated with the count of abnormal slices."""
    from WSSSCamLib.report.tables import external_measure, measure_columns

    cases = CASES.drop(columns="liquid_loss").assign(abnormal_slices=[3, 0, 5, 2, 4])
    assert measure_columns(cases) == [] and external_measure(cases) is None
    assert external_measure(cases.assign(liquid_loss=CASES["liquid_loss"])) == "liquid_loss"
    text = write_report(tmp_path / "study", make_results(), None, None, cases, {}, {}).read_text(encoding="utf-8")
    assert "the external measure" not in text and "Other measures in the cases table" not in text
