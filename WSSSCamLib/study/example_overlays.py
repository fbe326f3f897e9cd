"""Example overlays for the study report: for a few held-out cases, the slice with the largest
reference area, shown as four labelled panels (image, CAM as a heat overlay, the thresholded mask,
the reference mask) under a title naming the model, method, rule, case, slice and fold (one PNG per
case). The configuration shown is the best single configuration chosen on the training cases
(:func:`~WSSSCamLib.report.honest.best_configurations`; the first listed when several tie), at each
fold's threshold rule chosen on that fold's training cases: no test result chooses what is shown.
With a volume recipe the item is the slab with the largest reference volume, shown at its slice with the
largest reference area (the mask is the 3D map thresholded on the slab)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.datasets import load_case
from ..data.recipe import Recipe
from ..data.slices import SLICE_AXES
from ..devices import resolve_device
from ..figures.overlays import grey_rgb, overlay_rgb
from ..inference.volume_cams import slice_cams
from ..masks import Threshold, apply_threshold
from ..paths import output_path
from ..report import best_configurations, labelled_panels
from .context import StudyContext
from .units import case_slices


def example_overlays(
    context: StudyContext, training_scores: pd.DataFrame, thresholds: pd.DataFrame, folder: Path, count: int
) -> list[Path]:
    """Write up to ``count`` overlay PNGs under ``folder`` and return their paths (``training_scores`` and
    ``thresholds``: the study's choices on the training cases)."""
    single = training_scores[training_scores["kind"] == "threshold"]
    best = best_configurations(single)
    if best.empty or thresholds.empty:
        return []
    model_name, method = best["model"].iloc[0], best["method"].iloc[0]
    rules = thresholds[(thresholds["model"] == model_name) & (thresholds["method"] == method)]
    rule_of = dict(zip(rules["fold"], rules["threshold"]))
    spec = context.model_spec(model_name)
    recipe = context.recipe
    device = resolve_device(context.config.device)
    paths = []
    for fold in context.fold_indices:
        if len(paths) >= count:
            break
        if fold not in rule_of:
            continue
        threshold = Threshold.parse(rule_of[fold])
        network = context.fold_model(spec, fold, device)
        engine, card = network.engine, network.card
        shown = 0
        for case_id in context.folds.held_out(fold):  # the fold's cases with abnormality, as many as still wanted
            if len(paths) >= count or (shown and len(context.fold_indices) > 1):
                break
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
            reference = case.reference[index].numpy()
            offset = 0
            if reference.ndim == 3:  # a 3D slab: show its slice with the largest reference area
                offset = int(reference.reshape(reference.shape[0], -1).sum(1).argmax())
                cam, mask, reference = cam[:, offset], mask[offset], reference[offset]
            depth = loaded.image.shape_kji[SLICE_AXES[recipe.axis]]
            slice_number = recipe.native_slice_index(index, offset, depth)
            raw = _native_slice(loaded.image.array, recipe, slice_number)
            panels = [
                ("image", grey_rgb(raw)),
                ("CAM (reference outlined)", overlay_rgb(raw, cam[0].float().cpu().numpy(), outline=reference)),
                (f"mask at {threshold.name}", overlay_rgb(raw, mask.astype(np.float32), opacity=0.5)),
                ("reference mask", overlay_rgb(raw, reference.astype(np.float32), opacity=0.5)),
            ]
            title = (
                f"{model_name} / {method}, rule {threshold.name} (chosen on fold {fold}'s training cases); "
                f"case {case_id}, slice {slice_number} (axis {recipe.axis}), p(abnormal) {float(probability[0]):.2f}"
            )
            paths.append(labelled_panels(panels, title, output_path(folder, f"overlay_{case_id}.png")))
            shown += 1
    return paths


def _native_slice(image: np.ndarray, recipe: Recipe, index: int) -> np.ndarray:
    """The displayed channel (the context channel, else the first) of slice ``index`` of a
    (C x) K x J x I image, at native resolution."""
    image = image if image.ndim == 4 else image[None]
    return np.take(image[recipe.context_channel or 0], index, axis=SLICE_AXES[recipe.axis])


__all__ = ["example_overlays"]
