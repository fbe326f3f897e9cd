"""Cost of the faithfulness metrics relative to a plain forward pass of the same batch, side by side in
one process: deletion and insertion with S steps should cost about S + 1 forwards (batched), the
average drop / increase about 2.

    python Testing/benchmarks/bench_faithfulness.py                 # torchvision ResNet-18, batch 16, 3 x 96 x 96, CPU
    python Testing/benchmarks/bench_faithfulness.py --steps 20 --size 128 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from WSSSCamLib.cams.faithfulness import confidence_change, perturbation_curves


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
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2).eval().to(args.device)
    images = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    maps = torch.rand(args.batch, args.size, args.size, device=args.device)
    targets = torch.ones(args.batch, dtype=torch.long, device=args.device)

    def forward():
        with torch.inference_mode():
            model(images)

    plain = timed(forward, args.repeats)
    rows = {
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
    }
    print(
        f"ResNet-18, batch {args.batch} x 3 x {args.size} x {args.size}, device {args.device}, {torch.get_num_threads()} threads; "
        f"median of {args.repeats}"
    )
    print(f"plain forward: {plain:.3f} s")
    print("| metric | seconds | / plain forward | forwards it needs | / (forwards x plain) |")
    print("|---|--:|--:|--:|--:|")
    for name, (seconds, forwards) in rows.items():
        print(f"| {name} | {seconds:.3f} | {seconds / plain:.1f}x | {forwards} | {seconds / (plain * forwards):.2f} |")


if __name__ == "__main__":
    main()
