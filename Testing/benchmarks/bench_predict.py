"""Benchmark of ``wssscam predict``: per volume, the steady-state time of predict beside the CAM
computation alone for the same slices, measured side by side in one process; start-up (imports,
model load) and file writing (compression) shown separately.

    python Testing/benchmarks/bench_predict.py --checkpoint runs/lgg/fold0/model.pt --manifest runs/lgg_fold0_test.json --cases 6

"CAM computation alone" is the engine on the already normalised and sliced batches of the volume
(the same batches, methods and device predict uses); "volume_cams" is the library's whole CAM
computation for the volume (normalise, slice, CAMs, resize to the native grid); "predict" is one whole case: read, normalise,
slice, CAMs, resize to the native grid, masks, metrics and every output file. Each case runs once
as a warm-up, then the median of ``--repeats`` runs is reported. The goal is predict within 2x of
the CAM computation for the gradient methods.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def cams_alone(case, model, options) -> float:
    """Seconds of the CAM engine on the case's slices (read and slicing excluded)."""
    from WSSSCamLib.data.recipe import SliceRecipe
    from WSSSCamLib.data.slices import extract_slices
    from WSSSCamLib.inference import cam_engine_for
    from WSSSCamLib.predict import load_input

    loaded = load_input(case)
    recipe = SliceRecipe.from_card(model.card)
    image, _ = recipe.preprocess()(loaded.image, None)
    slices = extract_slices(
        case.case_id, image, None, recipe.axis, 0, (recipe.size, recipe.size), recipe.context_channel
    )
    engine = cam_engine_for(model.network, model.card)
    device = next(model.network.parameters()).device
    target = model.card.num_classes - 1
    started = time.perf_counter()
    for start in range(0, len(slices), options.batch_size):
        result = engine(slices.images[start : start + options.batch_size].to(device), target, list(options.methods))
        for maps in result.maps.values():
            maps.sum().item()  # wait for the device
    return time.perf_counter() - started


def library_volume_cams(case, model, options) -> float:
    """Seconds of the library's whole CAM computation for the volume (``volume_cams``: normalise, slice,
    CAMs, resize to the native grid), the case already read."""
    from WSSSCamLib.inference import volume_cams
    from WSSSCamLib.predict import load_input

    loaded = load_input(case)
    started = time.perf_counter()
    volume_cams(
        loaded.image,
        model.network,
        model.card,
        list(options.methods),
        batch_size=options.batch_size,
        device=options.device,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="volumes or a dataset folder, as for wssscam predict")
    parser.add_argument("--manifest", help="or a JSON manifest of cases, as for wssscam predict")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--methods", default="grad-cam,grad-cam++,hires-cam,xgrad-cam,layer-cam")
    parser.add_argument("--cases", type=int, default=5, help="the first N cases (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import WSSSCamLib.predict, WSSSCamLib.cli"], check=True)
    imports = time.perf_counter() - started
    from WSSSCamLib.masks import Threshold
    from WSSSCamLib.predict import (
        PredictOptions,
        SegmentationRule,
        cases_from_manifest,
        cases_from_paths,
        load_models,
        predict_case,
    )
    from WSSSCamLib.predict.progress import Progress

    started = time.perf_counter()
    models = load_models([args.checkpoint], args.device)
    load = time.perf_counter() - started
    options = PredictOptions(
        tuple(args.methods.split(",")),
        SegmentationRule(Threshold("fixed", 0.5)),
        batch_size=args.batch_size,
        device=args.device,
    )
    cases = (cases_from_manifest(args.manifest) if args.manifest else cases_from_paths(args.inputs))[: args.cases]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; methods {args.methods}")
    print(f"start-up: imports {imports:.2f} s (fresh interpreter), model load {load:.2f} s\n")
    print(
        "| case | slices | CAMs alone (s) | volume_cams (s) | predict (s) | of which: read | CAMs + resize | masks + metrics |"
        " write (compression) | predict / CAMs alone | without writing | without writing / volume_cams |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    ratios, ratios_no_write, ratios_library = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for number, case in enumerate(cases):
            cams_alone(case, models[0], options)  # warm-up
            predict_case(case, models, options, Path(folder) / f"w{number}", Progress())
            alone, whole, parts, library = [], [], [], []
            for repeat in range(args.repeats):
                alone.append(cams_alone(case, models[0], options))
                library.append(library_volume_cams(case, models[0], options))
                started = time.perf_counter()
                record = predict_case(case, models, options, Path(folder) / f"r{number}-{repeat}", Progress())
                whole.append(time.perf_counter() - started)
                parts.append(record["seconds"])
            a, w, v = statistics.median(alone), statistics.median(whole), statistics.median(library)
            stage = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
            slices = len(record["models"][models[0].name]["probabilities"])
            ratios.append(w / a)
            ratios_no_write.append((w - stage["write"]) / a)
            ratios_library.append((w - stage["write"]) / v)
            print(
                f"| {case.case_id} | {slices} | {a:.2f} | {v:.2f} | {w:.2f} | {stage['read']:.2f} | {stage['cams']:.2f} | "
                f"{stage['masks+metrics']:.2f} | {stage['write']:.2f} | {w / a:.2f}x | {(w - stage['write']) / a:.2f}x | "
                f"{(w - stage['write']) / v:.2f}x |"
            )
    print(
        f"\nmedian predict / CAMs alone: {statistics.median(ratios):.2f}x (goal <= 2x); "
        f"without file writing: {statistics.median(ratios_no_write):.2f}x; without file writing / the library's "
        f"volume_cams (normalise, slice, CAMs, resize): {statistics.median(ratios_library):.2f}x"
    )


if __name__ == "__main__":
    main()
