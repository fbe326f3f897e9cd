"""Benchmark of the CAM engine against pytorch-grad-cam and torchcam, side by side in one process.

Same model, batch, device and target classes for every row. Prints each time (median of
``--repeats`` runs after one warm-up) and the ratios the project's targets are stated in:

* our five gradient methods together / one plain forward pass (target: <= 1.3);
* pytorch-grad-cam running the same five one by one / ours (target: >= 8);
* torchcam running the ones it has (it has no HiResCAM) one by one / ours;
* Score-CAM: pytorch-grad-cam / ours (target: >= 1 on the CPU, >= 5 on a GPU), after checking that
  the maps agree to 1e-4 at the target layer's resolution.

Usage (defaults: torchvision ResNet-18, batch 16, 3 x 256 x 256, CPU)::

    python Testing/benchmarks/bench_cams.py [--model resnet18] [--batch 16] [--size 256]
        [--device cpu|cuda] [--repeats 3] [--score-batch 2] [--skip-score]

This is not a test: timings are machine-dependent and are never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torchvision

from WSSSCamLib.cams import GRADIENT_METHODS, CamEngine

GRAD_CAM_CLASSES = ["GradCAM", "GradCAMPlusPlus", "HiResCAM", "XGradCAM", "LayerCAM"]
TORCHCAM_CLASSES = ["GradCAM", "GradCAMpp", "XGradCAM", "LayerCAM"]


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run (seconds)."""
    fn()
    synchronise(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronise(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18", help="torchvision classifier name (default: %(default)s)")
    parser.add_argument("--layer", default="layer4", help="target layer (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--score-batch", type=int, default=2, help="images in the Score-CAM comparison (default: %(default)s)"
    )
    parser.add_argument(
        "--score-chunk",
        type=int,
        default=None,
        help="our masked inputs per forward pass (default: the engine's choice)",
    )
    parser.add_argument("--skip-score", action="store_true")
    args = parser.parse_args()

    import pytorch_grad_cam
    import torchcam.methods
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.model, weights=None, num_classes=1000).eval().to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    classes = [int(c) for c in torch.randint(0, 1000, (args.batch,))]
    layer = dict(model.named_modules())[args.layer]
    targets = [ClassifierOutputTarget(c) for c in classes]
    rows: list[tuple[str, float]] = []

    def plain_forward():
        with torch.no_grad():
            model(x)

    engine = CamEngine(model, args.layer)

    def ours_five():
        engine(x, classes, methods=GRADIENT_METHODS)

    def grad_cam_five():
        for name in GRAD_CAM_CLASSES:
            with getattr(pytorch_grad_cam, name)(model=model, target_layers=[layer]) as cam:
                cam(input_tensor=x, targets=targets)

    def torchcam_four():
        for name in TORCHCAM_CLASSES:
            with getattr(torchcam.methods, name)(model, args.layer) as extractor:
                extractor(class_idx=classes, scores=model(x))
            model.zero_grad(set_to_none=True)

    print(
        f"{args.model}, batch {args.batch}, 3 x {args.size} x {args.size}, {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    rows.append(("plain forward (no_grad)", timed(plain_forward, device, args.repeats)))
    rows.append(("ours: 5 gradient methods together", timed(ours_five, device, args.repeats)))
    rows.append(("pytorch-grad-cam: same 5, one by one", timed(grad_cam_five, device, args.repeats)))
    rows.append(("torchcam: 4 of them (no HiResCAM), one by one", timed(torchcam_four, device, args.repeats)))

    if not args.skip_score:
        xs, cs = x[: args.score_batch], classes[: args.score_batch]
        score_engine = CamEngine(model, args.layer, score_chunk_size=args.score_chunk)
        ours_maps: dict[str, np.ndarray] = {}

        def ours_score():
            ours_maps["m"] = score_engine(xs, cs, methods="score-cam", upsample=False)["score-cam"].cpu().numpy()

        theirs_maps: dict[str, np.ndarray] = {}

        def theirs_score():
            with pytorch_grad_cam.ScoreCAM(model=model, target_layers=[layer]) as cam:
                cam.get_target_width_height = lambda _x: None  # compare at the layer's resolution
                cam.batch_size = 16
                theirs_maps["m"] = cam(input_tensor=xs, targets=[ClassifierOutputTarget(c) for c in cs])

        score_repeats = max(1, args.repeats - 2)
        rows.append((f"ours: Score-CAM ({args.score_batch} images)", timed(ours_score, device, score_repeats)))
        rows.append(
            (f"pytorch-grad-cam: Score-CAM ({args.score_batch} images)", timed(theirs_score, device, score_repeats))
        )
        difference = float(np.abs(ours_maps["m"] - theirs_maps["m"]).max())

    width = max(len(name) for name, _ in rows)
    print()
    print(f"| {'what':<{width}} | seconds |")
    print(f"|{'-' * (width + 2)}|--------:|")
    for name, seconds in rows:
        print(f"| {name:<{width}} | {seconds:7.3f} |")
    t = dict(rows)
    ours = t["ours: 5 gradient methods together"]
    print()
    print(f"ours 5 together / plain forward          = {ours / t['plain forward (no_grad)']:.2f}x  (target <= 1.3)")
    print(
        f"pytorch-grad-cam 5 one by one / ours     = {t['pytorch-grad-cam: same 5, one by one'] / ours:.1f}x  (target >= 8)"
    )
    print(
        f"torchcam 4 one by one / ours (5)         = {t['torchcam: 4 of them (no HiResCAM), one by one'] / ours:.1f}x"
    )
    if not args.skip_score:
        speedup = (
            t[f"pytorch-grad-cam: Score-CAM ({args.score_batch} images)"]
            / t[f"ours: Score-CAM ({args.score_batch} images)"]
        )
        print(
            f"pytorch-grad-cam Score-CAM / ours        = {speedup:.2f}x  (target >= 1 on CPU, >= 5 on GPU); "
            f"max |map difference| = {difference:.2e} (target <= 1e-4)"
        )


if __name__ == "__main__":
    main()
