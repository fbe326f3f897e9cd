"""The README's main job: a complete CAM study on built-in generated data, no download.

Writes a Decathlon-layout dataset of brain-like 3D phantoms (soft-boundary lesions, true masks, an
external per-case measure), then runs :func:`WSSSCamLib.study.run_study` with two small
classifiers (``small-cnn`` and ``small-cnn-plain``) trained per fold on slice labels only (3-fold case-level cross-validation), every
classifier CAM method, the threshold grid plus percentile/mean/median/Otsu thresholds, the four
ensembles of Ostrowski et al. 2023 (grid-searched on the training cases), Dice/IoU per slice, per case and
pooled, agreement across methods and models, the correlation with the external measure, figures
and the HTML report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .atomic import write_text
from .cams import METHODS
from .data.synthetic import write_synthetic_dataset
from .report.gap import PSEUDO
from .report.tables import MAIN_METRIC, SEGMENTATION
from .study import parse_config, run_study

CLASSIFIER_METHODS = [name for name, method in METHODS.items() if not method.segmentation]


def demo_config(
    out_dir: Path, device: str = "auto", seed: int = 0, epochs: int = 12, size: int = 64, segmentation_epochs: int = 30
) -> dict:
    """The demo's study configuration (a plain dict, as it would be read from YAML)."""
    train = {"epochs": epochs, "patience": 0, "batch_size": 32, "learning_rate": 3e-3}
    return {
        "dataset": str(out_dir / "data"),
        "measures": str(out_dir / "data" / "measures.csv"),
        "output": str(out_dir / "study"),
        "folds": 3,
        "seed": seed,
        "device": device,
        "recipe": {"size": size, "axis": "K"},
        "models": [
            {"name": "small-cnn", "architecture": "small-cnn", "train": train},
            {"name": "plain-cnn", "architecture": "small-cnn-plain", "train": train},
        ],
        "methods": CLASSIFIER_METHODS,
        "thresholds": ["grid", "p95", "mean", "median", "otsu"],
        "ensembles": [
            {"rule": rule, "members": ["small-cnn/grad-cam", "plain-cnn/grad-cam"]} for rule in ("and", "or", "<", ">")
        ],
        # Refined CAMs (classifier gate, then the largest connected component): chosen per fold on the training cases.
        "refinements": [
            {
                "members": ["small-cnn/layer-cam-fused"],
                "thresholds": ["t=0.5", "p95", "otsu"],
                "steps": ["gate", "gate | components:keep=largest"],
            }
        ],
        # Deletion/insertion AUC, average drop/increase and pointing games on a few lesion slices per held-out case.
        "faithfulness": {"steps": 10, "slices": "abnormal", "per_case": 4, "methods": ["grad-cam", "layer-cam-fused"]},
        # Pseudo-labels of each fold's training cases from the refined CAM chosen on them -> a small U-Net, beside
        # the same U-Net trained on the reference masks of the same cases (the fully supervised upper bound).
        "segmentation": {
            "size": size,
            "epochs": segmentation_epochs,
            "batch_size": 16,
            "source": "best-refined",
            "ignore_band": 0.1,
            "supervised": True,
            "seed": seed,
        },
        "overlays": 3,
    }


def run_demo(
    out_dir: str | Path = "wssscam-demo",
    device: str = "auto",
    seed: int = 0,
    epochs: int = 12,
    segmentation_epochs: int = 30,
    cases: int = 12,
    shape: tuple[int, int, int] = (16, 64, 64),
    progress: bool = True,
) -> dict:
    """Generate the data (``cases`` phantom volumes of ``shape`` K x J x I), run the study, write
    ``summary.json`` and return the summary (paths and headline numbers)."""
    out_dir = Path(out_dir).resolve()
    started = time.perf_counter()
    if not (out_dir / "data" / "dataset.json").exists():
        write_synthetic_dataset(out_dir / "data", cases=cases, shape=shape, seed=seed)
    config = parse_config(
        demo_config(out_dir, device, seed, epochs, size=shape[-1], segmentation_epochs=segmentation_epochs),
        "demo",
        out_dir,
    )
    report = run_study(config, progress=progress)
    headline = pd.read_csv(config.output / "headline.csv", keep_default_na=True)
    training = pd.read_csv(config.output / "training_scores.csv")
    masks = int(training["training_cases"].max()) if not training.empty else None
    gap_file = config.output / "gap_closed.csv"
    gap = pd.read_csv(gap_file) if gap_file.is_file() else None
    summary = summarise(headline, report, time.perf_counter() - started, masks, gap)
    write_text(out_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def summarise(
    headline: pd.DataFrame,
    report: Path,
    seconds: float,
    training_masks: int | None = None,
    gap: pd.DataFrame | None = None,
) -> dict:
    """Headline numbers from the study's headline table (``headline.csv``): Empty, the best configuration(s)
    chosen on the training cases (ties all listed) and the a priori rule, on the held-out cases with
    bootstrap 95 % intervals. No number here was chosen on the test cases."""

    def numbers(row: pd.Series, prefix: str = "") -> dict:
        keys = ("dsc", "dsc_low", "dsc_high", "delta_dsc", "delta_dsc_low", "delta_dsc_high", "dice_abnormal")
        return {k: float(row[f"{prefix}{k}"]) for k in keys if f"{prefix}{k}" in row and pd.notna(row[f"{prefix}{k}"])}

    def entries(chosen: pd.DataFrame) -> list[dict]:
        return [
            {
                "configuration": row["configuration"],
                "rule": row["rule_chosen"],
                "training_dsc": float(row["training_dsc"]),
                **numbers(row),
            }
            for _, row in chosen.iterrows()
        ]

    empty = headline[headline["kind"] == "empty"]
    best = headline[headline["best"].astype(bool)]
    refined = headline[headline["best_refined"].astype(bool)] if "best_refined" in headline else headline.iloc[:0]
    networks = headline[headline["kind"] == SEGMENTATION]
    summary = {
        "report": str(report),
        "seconds": round(seconds, 1),
        "metric": MAIN_METRIC,
        "empty": float(empty["dsc"].iloc[0]) if not empty.empty else float("nan"),
        "training_masks": training_masks,
        "best": entries(best),
        "best_refined": entries(refined),
        "segmentation": [{"configuration": row["configuration"], **numbers(row)} for _, row in networks.iterrows()],
    }
    if gap is not None and not gap.empty:
        # per anchor and headline metric; None where undefined (the supervised U-Net not above the anchor)
        closed = gap[gap["network"] == PSEUDO]
        summary["gap_closed"] = {
            anchor: {
                row["metric"]: None if pd.isna(row["gap_closed"]) else float(row["gap_closed"])
                for _, row in rows.iterrows()
            }
            for anchor, rows in closed.groupby("anchor", sort=False)
        }
    single = headline[(headline["kind"] == "threshold") & headline.get("a_priori_dsc", pd.Series(dtype=float)).notna()]
    if not single.empty:  # a range over every single configuration: none is picked by its test result
        values = single["a_priori_dsc"].astype(float)
        summary["a_priori"] = {
            "rule": str(single["a_priori_rule"].iloc[0]),
            "configurations": int(len(values)),
            "lowest": float(values.min()),
            "median": float(values.median()),
            "highest": float(values.max()),
        }
    return summary


def _interval(values: dict, key: str, signed: bool = False) -> str:
    form = "{:+.3f}" if signed else "{:.3f}"
    text = form.format(values[key])
    if f"{key}_low" in values:
        text += f" [{form.format(values[key + '_low'])}, {form.format(values[key + '_high'])}]"
    return text


def print_summary(summary: dict) -> None:
    """Print the headline numbers of :func:`summarise`."""
    print(f"\nWSSSCam demo finished in {summary['seconds']:.0f} s")
    masks = summary.get("training_masks")
    print(
        f"  {summary['metric']} on held-out cases [95% CI]: Empty baseline {summary['empty']:.3f}; "
        f"choices made on the training cases only ({masks} training masks per fold)"
    )
    best = summary["best"]
    if len(best) > 1:
        print(
            f"  best on the training cases: {len(best)} configurations tie (training DSC {best[0]['training_dsc']:.3f}):"
        )
    for entry in best:
        print(
            f"  {'  ' if len(best) > 1 else 'best '}{entry['configuration']} ({entry['rule']}): {_interval(entry, 'dsc')}, "
            f"vs Empty {_interval(entry, 'delta_dsc', True)}; Dice on lesion slices {entry.get('dice_abnormal', float('nan')):.3f}"
        )
    for entry in summary.get("best_refined", []):
        print(
            f"  best refined CAM {entry['configuration']} ({entry['rule']}): {_interval(entry, 'dsc')}, "
            f"vs Empty {_interval(entry, 'delta_dsc', True)}; Dice on lesion slices {entry.get('dice_abnormal', float('nan')):.3f}"
        )
    for entry in summary.get("segmentation", []):
        print(
            f"  {entry['configuration']}: {_interval(entry, 'dsc')}, vs Empty {_interval(entry, 'delta_dsc', True)}; "
            f"Dice on lesion slices {entry.get('dice_abnormal', float('nan')):.3f}"
        )
    for anchor, values in summary.get("gap_closed", {}).items():
        closed = ", ".join(f"{metric} {'undefined' if v is None else format(v, '.0%')}" for metric, v in values.items())
        print(f"  gap from the {anchor} to the supervised U-Net closed by the pseudo-label U-Net: {closed}")
    if "a_priori" in summary:
        prior = summary["a_priori"]
        print(
            f"  a priori, no masks ({prior['rule']} for all {prior['configurations']} single maps): "
            f"{prior['lowest']:.3f} to {prior['highest']:.3f} (median {prior['median']:.3f})"
        )
    print(f"  report: {summary['report']}")
