"""Run any ``wssscam`` command inside 3D Slicer's Python, without the GUI.

    Slicer --no-main-window --python-script run_wssscam.py predict scan.nii.gz --checkpoint model.pt --out results
    Slicer --no-main-window --python-script run_wssscam.py study study.yaml --out results
    Slicer --no-main-window --python-script run_wssscam.py study study.yaml --shard 0/4 --stages cams

The WSSSCam extension puts WSSSCamLib on Slicer's Python path; the arguments are those of the
``wssscam`` command line (``wssscam --help``). The process exits with the command's status: through
``slicer.util.exit`` inside the Slicer application, through ``sys.exit`` where there is no
application (plain Python with the ``slicer-core`` package, as the tests run it).
"""

import sys

import slicer

from WSSSCamLib.cli import main


def _status() -> int:
    try:
        return main(sys.argv[1:]) or 0
    except SystemExit as stop:  # argparse and clean errors exit through SystemExit
        if isinstance(stop.code, int) or stop.code is None:
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1


status = _status()
if getattr(slicer, "app", None) is not None:
    slicer.util.exit(status)
else:
    sys.exit(status)
