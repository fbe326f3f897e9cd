"""The built-in sample of the Slicer module (Sample Data > WSSSCam phantom), made from the repository's
own generator instead of a download or a binary in git.

:func:`make_sample` writes, under one folder: a Decathlon-layout set of generated phantoms
(:func:`WSSSCamLib.data.synthetic.write_synthetic_dataset`), a small CNN trained on their slice labels
by ``wssscam train`` (2-fold case-level cross-validation; fold 0's ``model.pt`` with its model card is
the sample checkpoint), and points at one phantom with a lesion and its true mask. It is made once;
later calls return the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SampleFiles:
    """The sample's files: volume (NIfTI), its true lesion mask (NIfTI label map), checkpoint (.pt with card)."""

    volume: Path
    segmentation: Path
    checkpoint: Path


def make_sample(
    folder: str | Path,
    cases: int = 8,
    shape: tuple[int, int, int] = (16, 64, 64),
    epochs: int = 4,
    seed: int = 0,
    device: str = "cpu",
) -> SampleFiles:
    """Make (or find) the sample under ``folder``; see the module docstring."""
    from .cli import main
    from .data.synthetic import write_synthetic_dataset

    folder = Path(folder)
    data, models = folder / "data", folder / "models"
    if not (data / "dataset.json").exists():
        write_synthetic_dataset(data, cases=cases, shape=shape, seed=seed)
    checkpoint = models / "fold0" / "model.pt"
    if not checkpoint.exists():
        code = main(
            [
                "train",
                str(data),
                "--out",
                str(models),
                "--folds",
                "2",
                "--epochs",
                str(epochs),
                "--size",
                str(shape[-1]),
                "--patience",
                "0",
                "--seed",
                str(seed),
                "--device",
                device,
            ]
        )
        if code != 0 or not checkpoint.exists():
            raise RuntimeError(f"training the sample model failed (exit code {code}); see the log")
    case = _first_case_with_lesion(data)
    return SampleFiles(data / "imagesTr" / f"{case}_0000.nii.gz", data / "labelsTr" / f"{case}.nii.gz", checkpoint)


def _first_case_with_lesion(data: Path) -> str:
    """The first case (dataset order) whose true mask is not empty."""
    import nibabel

    for entry in json.loads((data / "dataset.json").read_text())["training"]:
        case = Path(entry["label"]).name.removesuffix(".nii.gz")
        if nibabel.load(str(data / "labelsTr" / f"{case}.nii.gz")).get_fdata().any():
            return case
    raise RuntimeError(f"{data}: no phantom has a lesion")
