"""Benchmark of the Slicer panel's background run (``WSSSCamLib.mrml.background_run.PanelRun``) on a
real slicer-core scene: the longest main-thread step (start: inputs written and the child started;
each poll; loading the results into the scene) and the time from Cancel to the child's exit.

    python Testing/benchmarks/bench_panel_run.py --checkpoint runs/lgg/fold0/model.pt \
        --volume ../shared/data/lgg-flair-dev/imagesTr/TCGA_CS_4941_19960909_0000.nii.gz [--volume ..._0001 ...]

The panel polls every 200 ms; the goal is that no main-thread step takes more than 0.5 s and that
the child is gone within a second of Cancel.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    import slicer

    from WSSSCamLib.data.readers import read_volume
    from WSSSCamLib.masks import Threshold
    from WSSSCamLib.mrml import volume_to_node
    from WSSSCamLib.mrml.background_run import PanelRun

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--volume", action="append", required=True, help="channel files in the model card's order")
    parser.add_argument("--methods", default="grad-cam,layer-cam,score-cam")
    args = parser.parse_args()
    scene = slicer.vtkMRMLScene()
    nodes = [volume_to_node(scene, read_volume(path), f"channel{n}") for n, path in enumerate(args.volume)]
    for label, cancel_after in (("full run", None), ("cancelled after 3 s", 3.0)):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            run = PanelRun(
                scene, nodes, [args.checkpoint], folder, args.methods.split(","), Threshold("fixed", 0.5), device="cpu"
            ).start()
            steps = {"start": time.perf_counter() - started}
            polls = []
            while run.state == "running" or (run.state == "succeeded" and not run.ready):
                time.sleep(0.2)
                tick = time.perf_counter()
                run.poll()
                polls.append(time.perf_counter() - tick)
                if cancel_after is not None and tick - started > cancel_after:
                    steps["cancel (until the child exited)"] = run.cancel()
                    break
            steps["longest poll"] = max(polls)
            if run.state == "succeeded":
                tick = time.perf_counter()
                run.load()
                steps["load into the scene"] = time.perf_counter() - tick
            wall = time.perf_counter() - started
            print(f"{label}: state {run.state}, {wall:.1f} s wall, {len(polls)} polls")
            for name, seconds in steps.items():
                print(f"  {name}: {seconds * 1000:.0f} ms")
            main_thread = [v for k, v in steps.items() if not k.startswith("cancel")]
            print(f"  longest main-thread step: {max(main_thread) * 1000:.0f} ms (goal <= 500 ms)")


if __name__ == "__main__":
    main()
