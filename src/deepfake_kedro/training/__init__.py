"""Fusion-head training: config, loop, trainable branches, early stopping, checkpoints and
curves (no Kedro)."""

from deepfake_kedro.training.config import TrainableConfig, TrainingConfig
from deepfake_kedro.training.loop import (
    EpochMetrics,
    TrainingResult,
    build_model,
    config_differences,
    plot_training_curves,
    predict_proba,
    train_fusion,
)
from deepfake_kedro.training.trainable import TrainableInputs

__all__ = [
    "EpochMetrics",
    "TrainableConfig",
    "TrainableInputs",
    "TrainingConfig",
    "TrainingResult",
    "build_model",
    "config_differences",
    "plot_training_curves",
    "predict_proba",
    "train_fusion",
]
