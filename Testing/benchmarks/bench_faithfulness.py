"""Cost of the faithfulness metrics relative to a plain forward pass of the same batch, side by side in
one process: deletion and insertion with S steps should cost about S + 1 forwards (batched), the
average drop / increase about 2; S + 1 plain forwards of the batch, timed in a loop, are the yardstick
for "S steps vs S forwards". The study's rows (:func:`WSSSCamLib.study.faithfulness_rows.measure_maps`:
every metric incl. pointing for M methods of the batch's slices) need M (2 S + 4) forwards' worth.

    python Testing/benchmarks/bench_faithfulness.py                 # torchvision ResNet-18, batch 16, 3 x 96 x 96, CPU
    python Testing/benchmarks/bench_faithfulness.py --architecture small-cnn --methods 2
    python Testing/benchmarks/bench_faithfulness.py --steps 20 --size 128 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from WSSSCamLib.cams.faithfulness import confidence_change, perturbation_curves
from WSSSCamLib.models.zoo import build_model
from WSSSCamLib.study.config import FaithfulnessSpec
from WSSSCamLib.study.faithfulness_rows import measure_maps


def timed(function, repeats: int) -> float:
    function()  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=64, help="perturbed inputs per forward pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--architecture", default="resnet18", help="a zoo architecture (3 input channels, 2 classes)")
    parser.add_argument("--methods", type=int, default=2, help="maps per slice in the study rows")
    parser.add_argument("--baseline", default="minimum")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(args.architecture, 3, 2).eval().to(args.device)
    images = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    maps = torch.rand(args.batch, args.size, args.size, device=args.device)
    targets = torch.ones(args.batch, dtype=torch.long, device=args.device)
    reference = torch.zeros(args.batch, args.size, args.size, dtype=torch.bool, device=args.device)
    reference[:, args.size // 4 : args.size // 2, args.size // 3 : args.size // 2] = True
    study_maps = {f"method{k}": torch.rand_like(maps) for k in range(args.methods)}
    spec = FaithfulnessSpec(steps=args.steps, baseline=args.baseline)

    def forward():
        with torch.inference_mode():
            model(images)

    def forwards(count: int):
        for _ in range(count):
            forward()

    plain = timed(forward, args.repeats)
    rows = {
        f"{args.steps + 1} plain forwards of the batch (the yardstick)": (
            timed(lambda: forwards(args.steps + 1), args.repeats),
            args.steps + 1,
        ),
        "average drop / increase (image and explanation)": (
            timed(lambda: confidence_change(model, images, maps, targets), args.repeats),
            2,
        ),
        f"deletion, {args.steps} steps": (
            timed(
                lambda: perturbation_curves(model, images, maps, targets, "deletion", args.steps, chunk=args.chunk),
                args.repeats,
            ),
            args.steps + 1,
        ),
        f"insertion, {args.steps} steps": (
            timed(
                lambda: perturbation_curves(model, images, maps, targets, "insertion", args.steps, chunk=args.chunk),
                args.repeats,
            ),
            args.steps + 1,
        ),
        f"study rows: {args.methods} methods, {args.steps} steps, {args.baseline}, with pointing (measure_maps)": (
            timed(lambda: measure_maps(model, images, study_maps, 1, spec, args.chunk, reference), args.repeats),
            args.methods * (2 * args.steps + 4),
        ),
    }
    print(
        f"{args.architecture}, batch {args.batch} x 3 x {args.size} x {args.size}, device {args.device}, "
        f"{torch.get_num_threads()} threads, chunk {args.chunk}; median of {args.repeats}"
    )
    print(f"plain forward: {plain:.3f} s")
    print("| metric | seconds | / plain forward | forwards it needs | / (forwards x plain) |")
    print("|---|--:|--:|--:|--:|")
    for name, (seconds, forwards) in rows.items():
        print(f"| {name} | {seconds:.3f} | {seconds / plain:.1f}x | {forwards} | {seconds / (plain * forwards):.2f} |")
    study_seconds = rows[next(k for k in rows if k.startswith("study rows"))][0]
    print(
        f"study rows per slice: {study_seconds / args.batch:.3f} s ({args.methods} methods), "
        f"{study_seconds / (args.batch * args.methods):.3f} s per slice x method"
    )


if __name__ == "__main__":
    main()
