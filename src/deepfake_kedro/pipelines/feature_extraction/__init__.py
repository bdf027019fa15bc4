"""feature_extraction: one namespaced branch per backbone (resnet, clip, spectral), cached."""

from deepfake_kedro.pipelines.feature_extraction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
