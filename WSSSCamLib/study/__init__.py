"""Full-dataset CAM studies (``wssscam study``): configuration, the context the stages share, the stages
(train, cams, retrain, segment, report), units of work, aggregation, merging of shards."""

from .config import (
    ConfigError,
    EnsembleSpec,
    ModelSpec,
    StudyConfig,
    load_config,
    parse_config,
)
from .context import StudyContext
from .inputs import read_dataset
from .merge import merge_outputs
from .pipeline import STAGES, run_study

__all__ = [
    "STAGES",
    "ConfigError",
    "EnsembleSpec",
    "ModelSpec",
    "StudyConfig",
    "StudyContext",
    "load_config",
    "merge_outputs",
    "parse_config",
    "read_dataset",
    "run_study",
]
