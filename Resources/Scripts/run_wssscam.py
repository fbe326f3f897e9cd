"""Run any ``wssscam`` command inside 3D Slicer's Python, without the GUI.

    Slicer --no-main-window --python-script run_wssscam.py study study.yaml --out results
    Slicer --no-main-window --python-script run_wssscam.py study study.yaml --shard 0/4 --stages cams

The WSSSCam extension puts WSSSCamLib on Slicer's Python path; the arguments are those of the
``wssscam`` command line (``wssscam --help``). Slicer exits with the command's exit status.
"""

import sys

import slicer

from WSSSCamLib.cli import main

try:
    status = main(sys.argv[1:])
except SystemExit as stop:  # argparse and clean errors exit through SystemExit
    status = stop.code if isinstance(stop.code, int) else (print(stop.code, file=sys.stderr) or 1)
slicer.util.exit(status or 0)
