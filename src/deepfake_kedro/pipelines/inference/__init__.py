"""inference: score images with the detector (batch with a registered version, or packaged)."""

from deepfake_kedro.pipelines.inference.pipeline import create_model_pipeline, create_pipeline

__all__ = ["create_model_pipeline", "create_pipeline"]
