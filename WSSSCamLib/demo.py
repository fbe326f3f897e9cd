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
from .report.tables import MAIN_METRIC, best_result
from .study import parse_config, run_study

CLASSIFIER_METHODS = [name for name, method in METHODS.items() if not method.segmentation]


def demo_config(out_dir: Path, device: str = "auto", seed: int = 0, epochs: int = 12, size: int = 64) -> dict:
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
        "overlays": 3,
    }


def run_demo(
    out_dir: str | Path = "wssscam-demo",
    device: str = "auto",
    seed: int = 0,
    epochs: int = 12,
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
    config = parse_config(demo_config(out_dir, device, seed, epochs, size=shape[-1]), "demo", out_dir)
    report = run_study(config, progress=progress)
    results = pd.read_parquet(config.output / "results.parquet")
    summary = summarise(results, report, time.perf_counter() - started)
    write_text(out_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def summarise(results: pd.DataFrame, report: Path, seconds: float, metric: str = MAIN_METRIC) -> dict:
    """Headline numbers: Empty baseline, best single configuration, best ensemble, under ``metric``."""
    pooled = results[(results["case"] == "ALL") & (results["metric"] == metric)]
    empty = float(pooled.loc[pooled["kind"] == "empty", "value"].iloc[0])
    single = best_result(results, metric, ("threshold",))
    summary = {
        "report": str(report),
        "seconds": round(seconds, 1),
        "metric": metric,
        "empty": empty,
        "best_single": {
            "model": single["model"],
            "method": single["method"],
            "result": single["result"],
            "value": float(single["value"]),
        },
    }
    ensemble = best_result(results, metric, ("ensemble",))
    if ensemble is not None:
        summary["best_ensemble"] = {"name": ensemble["model"], "value": float(ensemble["value"])}
    fg = results[(results["case"] == "ALL") & (results["metric"] == "dice_mean_abnormal_slices")]
    match = fg[
        (fg["model"] == single["model"]) & (fg["method"] == single["method"]) & (fg["result"] == single["result"])
    ]
    summary["best_single"]["dice_mean_abnormal_slices"] = (
        float(match["value"].iloc[0]) if not match.empty else float("nan")
    )
    return summary


def print_summary(summary: dict) -> None:
    """Print the headline numbers of :func:`summarise`."""
    best = summary["best_single"]
    print(f"\nWSSSCam demo finished in {summary['seconds']:.0f} s")
    print(
        f"  {summary['metric']}: Empty baseline {summary['empty']:.3f}; best single {best['model']} / {best['method']} "
        f"at {best['result']}: {best['value']:.3f} (mean Dice on slices with lesion {best['dice_mean_abnormal_slices']:.3f})"
    )
    if "best_ensemble" in summary:
        print(
            f"  best ensemble {summary['best_ensemble']['name']} (thresholds chosen on training cases): {summary['best_ensemble']['value']:.3f}"
        )
    print(f"  report: {summary['report']}")
