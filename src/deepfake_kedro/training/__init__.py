"""Fusion-head training: config, loop, early stopping, checkpoints and curves (no Kedro)."""

from deepfake_kedro.training.config import TrainingConfig
from deepfake_kedro.training.loop import (
    EpochMetrics,
    TrainingResult,
    build_model,
    config_differences,
    plot_training_curves,
    predict_proba,
    train_fusion,
)

__all__ = [
    "EpochMetrics",
    "TrainingConfig",
    "TrainingResult",
    "build_model",
    "config_differences",
    "plot_training_curves",
    "predict_proba",
    "train_fusion",
]
