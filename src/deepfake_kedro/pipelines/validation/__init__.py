"""validation: performance gate, robustness, fairness, HTML report and the verdict."""

from deepfake_kedro.pipelines.validation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
