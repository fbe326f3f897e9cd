"""Batch prediction: trained checkpoints applied to new volumes; CAM volumes and segmentations written
to standard files (NIfTI/NRRD, .seg.nrrd, DICOM SEG) in the input's geometry, resumable per case.
The engine of ``wssscam predict`` and of the Slicer panel's background run."""

from .inputs import PredictCase, PredictInputError, cases_from_manifest, cases_from_paths, load_input
from .progress import BarProgress, JsonLinesProgress, Progress, progress_for
from .run import PredictModel, PredictOptions, PredictSummary, load_models, predict, predict_case, read_result
from .segments import SegmentationRule, Segments, segment_volumes

__all__ = [
    "BarProgress",
    "JsonLinesProgress",
    "PredictCase",
    "PredictInputError",
    "PredictModel",
    "PredictOptions",
    "PredictSummary",
    "Progress",
    "SegmentationRule",
    "Segments",
    "cases_from_manifest",
    "cases_from_paths",
    "load_input",
    "load_models",
    "predict",
    "predict_case",
    "progress_for",
    "read_result",
    "segment_volumes",
]
