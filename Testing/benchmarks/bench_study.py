"""Wall time of a study split by stage (training excluded), and slices per second.

    python Testing/benchmarks/bench_study.py                       # generated data (the demo's study)
    python Testing/benchmarks/bench_study.py --config study.yaml   # any study; its models are trained first if missing
    python Testing/benchmarks/bench_study.py --device cuda
    python Testing/benchmarks/bench_study.py --existing runs/lgg-study   # a finished study: its own recorded timings

The models are trained (or found) first and not timed. Then the 'cams' and 'report' stages run
from scratch in a fresh copy of the output folder (models and folds only), and the script prints
the seconds of each unit stage summed over all units (read+preprocess, transfer, cams,
masks+metrics, agreement, write), the report stage, the wall time, and held-out slices per second.
Guan & Loew 2021's filtered retraining is training, so it is left out of the timed run.

``--existing OUTPUT`` recomputes nothing: it prints the same split from the timings every unit of a
finished study recorded in its marker while that study ran (slices per second then refer to the
summed unit time, as no stage wall time was recorded).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="study configuration (default: the demo's study on generated data)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--work", help="folder for the generated data and trained models (default: a temporary folder)")
    parser.add_argument(
        "--existing", help="a finished study's output folder: print its recorded unit timings, run nothing"
    )
    args = parser.parse_args(argv)
    if args.existing:
        output = Path(args.existing)
        provenance = (
            json.loads((output / "provenance.json").read_text()) if (output / "provenance.json").exists() else {}
        )
        print(f"study: {output} (recorded timings); device: {provenance.get('config', {}).get('device', '?')}")
        print_split(output, None, None)
        return 0

    from WSSSCamLib.data.synthetic import write_synthetic_dataset
    from WSSSCamLib.demo import demo_config
    from WSSSCamLib.study import load_config, parse_config, run_study

    work = Path(args.work or tempfile.mkdtemp(prefix="wssscam-bench-"))
    if args.config:
        config = load_config(args.config)
    else:
        if not (work / "data" / "dataset.json").exists():
            write_synthetic_dataset(work / "data", cases=12)
        config = parse_config(demo_config(work), "demo", work)
    if args.device:
        config.device = args.device
    run_study(config, stages=["train"], progress=False)  # not timed
    config.filtered_retraining = None  # training too: not timed

    timed = config.output.parent / (config.output.name + "-bench")
    shutil.rmtree(timed, ignore_errors=True)
    timed.mkdir(parents=True)
    shutil.copy2(config.output / "folds.json", timed / "folds.json")
    if (config.output / "models").exists():
        shutil.copytree(config.output / "models", timed / "models")
    config.output = timed
    started = time.perf_counter()
    run_study(config, stages=["cams"], progress=False)
    cams_wall = time.perf_counter() - started
    started = time.perf_counter()
    run_study(config, stages=["report"], progress=False)
    report_wall = time.perf_counter() - started

    import torch

    from WSSSCamLib.devices import resolve_device

    device = resolve_device(config.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"study: {config.source}; device: {name}")
    print_split(timed, cams_wall, report_wall)
    return 0


def print_split(output: Path, cams_wall: float | None, report_wall: float | None) -> None:
    """The unit stages summed over every unit marker of ``output``, as a Markdown table, and slices per second."""
    markers = [json.loads(p.read_text()) for p in (output / "units").glob("*/fold*.json")]
    if not markers:
        raise SystemExit(f"{output}: no finished units (units/<case>/fold<k>.json); is this a study output folder?")
    stages: dict[str, float] = {}
    for marker in markers:
        for stage, seconds in marker["seconds"].items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    test_slices = sum(m["slices"] for m in markers if m["role"] == "test")
    roles = {role: sum(m["role"] == role for m in markers) for role in ("test", "train")}
    print(f"units: {len(markers)} ({roles['test']} held-out, {roles['train']} training; {test_slices} held-out slices)")
    print("| stage | seconds | share |\n|---|--:|--:|")
    total = sum(stages.values())
    for stage, seconds in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"| {stage} | {seconds:.1f} | {seconds / total:.0%} |")
    print(f"| all unit stages | {total:.1f} | |")
    if cams_wall is not None:
        print(f"| cams stage wall time | {cams_wall:.1f} | |")
    if report_wall is not None:
        print(f"| report stage wall time | {report_wall:.1f} | |")
    seconds, what = (cams_wall, "cams stage wall time") if cams_wall is not None else (total, "summed unit time")
    print(
        f"held-out slices per second ({what}; all models, methods, thresholds, ensembles, agreement): {test_slices / seconds:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
