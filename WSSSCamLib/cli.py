"""Command line: ``wssscam demo``, ``wssscam methods``."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from .demo import print_summary, run_demo

    summary = run_demo(args.out, device=args.device, seed=args.seed, epochs=args.epochs)
    print_summary(summary, args.out)
    return 0


def _methods(_: argparse.Namespace) -> int:
    from .cams import METHODS

    for method in METHODS.values():
        print(f"{method.name:<20} {method.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wssscam", description="Weakly supervised segmentation with class activation maps.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="CAMs of a small CNN trained on built-in synthetic phantoms; writes overlay PNGs")
    demo.add_argument("--out", default="wssscam-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=int, default=12)
    demo.set_defaults(run=_demo)
    methods = sub.add_parser("methods", help="list the CAM methods")
    methods.set_defaults(run=_methods)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
