"""Example overlays for the study report: for a few held-out cases, the slice with the largest
reference area, its image, the CAM of the best single configuration as a heat overlay with the
reference outline, and the thresholded mask, side by side (one PNG per case)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.datasets import Dataset, load_case
from ..data.slices import SLICE_AXES
from ..data.splits import Folds
from ..devices import resolve_device
from ..figures.overlays import grey_rgb, overlay_rgb, write_png
from ..inference.volume_cams import cam_engine_for, slice_cams
from ..masks import Threshold, apply_threshold
from ..paths import output_path
from ..training.checkpoint import load_checkpoint
from .config import StudyConfig


def best_single(results: pd.DataFrame, metric: str = "pooled_dsc_seed004") -> tuple[str, str, str] | None:
    """(model, method, result) of the best thresholded single-model configuration under ``metric``."""
    rows = results[(results["case"] == "ALL") & (results["metric"] == metric) & (results["kind"] == "threshold")]
    if rows.empty:
        return None
    best = rows.loc[rows["value"].idxmax()]
    return best["model"], best["method"], best["result"]


def example_overlays(config: StudyConfig, dataset: Dataset, folds: Folds, results: pd.DataFrame, folder: Path, count: int) -> list[Path]:
    """Write up to ``count`` overlay PNGs under ``folder`` and return their paths."""
    from .runner import checkpoint_path, recipe_of
    from .units import case_slices

    best = best_single(results)
    if best is None:
        return []
    model_name, method, result = best
    spec = next(s for s in config.models if s.name == model_name)
    threshold = Threshold.parse(result)
    recipe = recipe_of(config, dataset)
    device = resolve_device(config.device)
    paths = []
    for fold, held_out in enumerate(folds.folds):
        if len(paths) >= count:
            break
        model, card = load_checkpoint(checkpoint_path(config, spec, fold), device=device)
        engine = cam_engine_for(model.eval(), card)
        for case_id in held_out:  # the fold's first case with abnormality
            loaded = load_case(dataset.case(case_id))
            case = case_slices(dataset.case(case_id), loaded, recipe)
            if case.reference is None or not case.reference.any():
                continue
            index = int(case.reference.flatten(1).sum(1).argmax())
            maps, probability = slice_cams(engine, case.inputs.images[index : index + 1].to(device), [method], card.num_classes - 1,
                                           tuple(case.reference.shape[1:]))
            cam = maps[method]
            mask = apply_threshold(cam, threshold)[0].cpu().numpy()
            raw = _native_slice(loaded.image.array, recipe, index)
            reference = case.reference[index].numpy()
            panels = [grey_rgb(raw), overlay_rgb(raw, cam[0].float().cpu().numpy(), outline=reference),
                      overlay_rgb(raw, mask.astype(np.float32), opacity=0.5, outline=reference)]
            path = output_path(folder, f"overlay_{case_id}.png")
            write_png(path, np.concatenate(panels, axis=1))
            paths.append(path)
            break
    return paths


def _native_slice(image: np.ndarray, recipe, index: int) -> np.ndarray:
    """The displayed channel (the context channel, else the first) of slice ``index`` of a
    (C x) K x J x I image, at native resolution."""
    image = image if image.ndim == 4 else image[None]
    return np.take(image[recipe.context_channel or 0], index, axis=SLICE_AXES[recipe.axis])


__all__ = ["best_single", "example_overlays"]
