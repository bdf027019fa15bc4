"""Wiring of ensemble_training."""

from collections.abc import Sequence

from kedro.pipeline import Pipeline

from deepfake_kedro.pipelines.ensemble_training.nodes import train_ensemble
from deepfake_kedro.pipelines.feature_extraction.pipeline import node_reading_branches


def create_pipeline(branches: Sequence[str] | None = None, **kwargs) -> Pipeline:
    """The pipeline; ``branches`` defaults to the configured ones (``feature_extraction.backbones``)."""
    training = node_reading_branches(
        train_ensemble,
        inputs={
            "split_manifest": "split_manifest",
            "dataset_fingerprint": "dataset_fingerprint",
            "training_state": "training_state",
            "params": "params:ensemble_training",
        },
        outputs=["fusion_checkpoint", "training_metrics", "training_curves", "training_tags"],
        name="train_ensemble_node",
        branches=branches,
    )
    return Pipeline([training], tags=["training", "ensemble_training"])
