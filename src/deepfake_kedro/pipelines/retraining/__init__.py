"""retraining: no-champion, freshness, degradation and drift checks -> retrain yes/no."""

from deepfake_kedro.pipelines.retraining.pipeline import create_pipeline

__all__ = ["create_pipeline"]
