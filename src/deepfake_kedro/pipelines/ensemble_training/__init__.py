"""ensemble_training: train the fusion head over the per-backbone features, tracked in MLflow."""

from deepfake_kedro.pipelines.ensemble_training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
