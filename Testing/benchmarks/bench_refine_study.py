"""Cost per slice of each refinement step a study can count (key ``refinements``), relative to plain thresholding.

    python Testing/benchmarks/bench_refine_study.py                                   # 3 LGG dev cases, surrogate maps
    python Testing/benchmarks/bench_refine_study.py --cases 5 --checkpoint runs/x/models/m/fold0/model.pt
    python Testing/benchmarks/bench_refine_study.py --dataset other/decathlon --steps "gate" "slic:n=200"

Per case: the volume is read, normalised and sliced as a study does (:func:`WSSSCamLib.study.units.case_slices`
with the recipe; the steps read the normalised native-resolution images, every channel), the maps are
the model's Grad-CAM at native size (``--checkpoint``), or else a surrogate CAM: the reference mask
blurred (Gaussian, sigma 6 px) and normalised to [0, 1] per slice, which has a CAM's blob shape around
the lesion (slices without lesion get an all-zero map). Each configuration's masks are computed with
:func:`WSSSCamLib.study.refined.refined_masks` (what a unit counts) and counted against the reference;
the script prints milliseconds per slice and the ratio to the plain thresholded count ("none").
Timings are the median of ``--repeats`` passes over all slices, after one warm-up pass.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

DEFAULT_STEPS = (
    "none",
    "gate",
    "components:keep=largest",
    "gate | components:keep=largest",
    "felzenszwalb:scale=100",
    "slic:n=400",
    "random_walker",
    "crf",
)


def surrogate_maps(reference: torch.Tensor, sigma: float = 6.0) -> torch.Tensor:
    """N x H x W float in [0, 1]: the reference blurred per slice and divided by its slice maximum."""
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    maps = reference.float()[:, None]
    maps = torch.nn.functional.conv2d(maps, kernel.view(1, 1, 1, -1), padding=(0, radius))
    maps = torch.nn.functional.conv2d(maps, kernel.view(1, 1, -1, 1), padding=(radius, 0))[:, 0]
    peak = maps.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (maps / peak).clamp(0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="/work/shared/data/lgg-flair-dev", help="Decathlon/nnU-Net folder")
    parser.add_argument("--cases", type=int, default=3, help="the first N cases with a lesion")
    parser.add_argument("--checkpoint", help="a classifier checkpoint (card beside it): its Grad-CAM as the maps")
    parser.add_argument("--threshold", default="t=0.50", help="the threshold rule before the steps")
    parser.add_argument("--steps", nargs="+", default=list(DEFAULT_STEPS), help="pipelines to time ('none' = plain)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from WSSSCamLib.data.datasets import load_case, read_decathlon
    from WSSSCamLib.data.recipe import SliceRecipe
    from WSSSCamLib.masks import Threshold
    from WSSSCamLib.metrics import confusion_counts
    from WSSSCamLib.refine import MissingDependencyError, Pipeline
    from WSSSCamLib.study.refined import RefinedConfiguration, refined_masks
    from WSSSCamLib.study.units import case_slices

    device = torch.device(args.device)
    dataset = read_decathlon(Path(args.dataset))
    engine = card = None
    recipe = SliceRecipe()
    if args.checkpoint:
        from WSSSCamLib.inference.volume_cams import cam_engine_for
        from WSSSCamLib.training.checkpoint import load_checkpoint

        model, card = load_checkpoint(args.checkpoint, device=str(device))
        engine, recipe = cam_engine_for(model, card), SliceRecipe.from_card(card)
    cases = []
    for case in dataset.cases:
        if len(cases) >= args.cases:
            break
        loaded = load_case(case)
        if loaded.mask is None or not loaded.mask.array.any():
            continue
        cases.append(case_slices(case, loaded, recipe))
    inputs = []
    for case in cases:
        if engine is not None:
            from WSSSCamLib.inference.volume_cams import slice_cams

            maps, probability = slice_cams(
                engine, case.inputs.images.to(device), ["grad-cam"], card.num_classes - 1, case.reference.shape[1:]
            )
            maps = maps["grad-cam"]
        else:
            maps = surrogate_maps(case.reference).to(device)
            probability = case.reference.flatten(1).any(1).float().to(device) * 0.8 + 0.1  # a sure classifier
        inputs.append((case, maps, probability, case.reference.to(device)))
    slices = sum(len(c.inputs) for c in cases)
    shape = tuple(cases[0].reference.shape[1:])
    channels = cases[0].images.shape[1]
    source = "Grad-CAM of " + args.checkpoint if args.checkpoint else "surrogate maps (blurred reference)"
    print(f"{len(cases)} cases, {slices} slices of {shape[0]} x {shape[1]}, {channels} image channel(s); {source}")
    print(f"threshold {args.threshold}, device {device}, median of {args.repeats} passes")

    threshold = Threshold.parse(args.threshold)

    def one_pass(configuration: RefinedConfiguration) -> float:
        started = time.perf_counter()
        for case, maps, probability, reference in inputs:
            confusion_counts(refined_masks(case, maps, probability, configuration), reference)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    baseline = None
    print(f"{'steps':<48} {'ms/slice':>9} {'x plain':>8}")
    for text in args.steps:
        configuration = RefinedConfiguration("m", "grad-cam", threshold, Pipeline.parse(text))
        try:
            one_pass(configuration)
        except MissingDependencyError as error:
            print(f"{text:<48} skipped: {error}")
            continue
        seconds = statistics.median(one_pass(configuration) for _ in range(args.repeats))
        per_slice = 1000 * seconds / slices
        baseline = per_slice if baseline is None and text == "none" else baseline
        ratio = f"{per_slice / baseline:8.1f}" if baseline else f"{'':>8}"
        print(f"{text:<48} {per_slice:9.3f} {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
