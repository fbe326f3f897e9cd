"""Example overlays for the study report: for a few held-out cases, the slice with the largest
reference area, its image, the CAM of the best single configuration as a heat overlay with the
reference outline, and the thresholded mask, side by side (one PNG per case). The best single
configuration is :func:`~WSSSCamLib.report.tables.best_result` among the thresholded ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.datasets import load_case
from ..data.recipe import SliceRecipe
from ..data.slices import SLICE_AXES
from ..devices import resolve_device
from ..figures.overlays import grey_rgb, overlay_rgb, write_png
from ..inference.volume_cams import slice_cams
from ..masks import Threshold, apply_threshold
from ..paths import output_path
from ..report.tables import best_result
from .context import StudyContext
from .units import case_slices


def example_overlays(context: StudyContext, results: pd.DataFrame, folder: Path, count: int) -> list[Path]:
    """Write up to ``count`` overlay PNGs under ``folder`` and return their paths."""
    best = best_result(results)
    if best is None:
        return []
    model_name, method, result = best["model"], best["method"], best["result"]
    spec = context.model_spec(model_name)
    threshold = Threshold.parse(result)
    recipe = context.recipe
    device = resolve_device(context.config.device)
    paths = []
    for fold, held_out in enumerate(context.folds.folds):
        if len(paths) >= count:
            break
        network = context.fold_model(spec, fold, device)
        engine, card = network.engine, network.card
        for case_id in held_out:  # the fold's first case with abnormality
            loaded = load_case(context.dataset.case(case_id))
            case = case_slices(context.dataset.case(case_id), loaded, recipe)
            if case.reference is None or not case.reference.any():
                continue
            index = int(case.reference.flatten(1).sum(1).argmax())
            maps, probability = slice_cams(
                engine,
                case.inputs.images[index : index + 1].to(device),
                [method],
                card.num_classes - 1,
                tuple(case.reference.shape[1:]),
            )
            cam = maps[method]
            mask = apply_threshold(cam, threshold)[0].cpu().numpy()
            raw = _native_slice(loaded.image.array, recipe, index)
            reference = case.reference[index].numpy()
            panels = [
                grey_rgb(raw),
                overlay_rgb(raw, cam[0].float().cpu().numpy(), outline=reference),
                overlay_rgb(raw, mask.astype(np.float32), opacity=0.5, outline=reference),
            ]
            path = output_path(folder, f"overlay_{case_id}.png")
            write_png(path, np.concatenate(panels, axis=1))
            paths.append(path)
            break
    return paths


def _native_slice(image: np.ndarray, recipe: SliceRecipe, index: int) -> np.ndarray:
    """The displayed channel (the context channel, else the first) of slice ``index`` of a
    (C x) K x J x I image, at native resolution."""
    image = image if image.ndim == 4 else image[None]
    return np.take(image[recipe.context_channel or 0], index, axis=SLICE_AXES[recipe.axis])


__all__ = ["example_overlays"]
