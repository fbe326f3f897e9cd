"""Full-dataset CAM studies: configuration, units of work, aggregation, report (``wssscam study``)."""

from .config import (
           ConfigError,
           EnsembleSpec,
           ModelSpec,
           StudyConfig,
           load_config,
           parse_config,
)
from .runner import STAGES, merge_outputs, read_dataset, run_study

__all__ = ["ConfigError", "EnsembleSpec", "ModelSpec", "STAGES", "StudyConfig", "load_config", "merge_outputs", "parse_config",
           "read_dataset", "run_study"]
