"""registration: decide what to register, re-score the champion, then (after the model is
logged) register the version and move the aliases."""

from deepfake_kedro.pipelines.registration.pipeline import create_pipeline

__all__ = ["create_pipeline"]
