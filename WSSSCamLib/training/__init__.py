"""Training classifiers from image-level labels, checkpoints and model cards."""

from .checkpoint import CheckpointError, ModelCard, load_checkpoint, save_checkpoint
from .trainer import (
    TrainConfig,
    TrainResult,
    evaluate,
    predict_probabilities,
    train_classifier,
)

__all__ = [
    "CheckpointError",
    "ModelCard",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_checkpoint",
    "predict_probabilities",
    "save_checkpoint",
    "train_classifier",
]
