"""Wiring of ensemble_training."""

from collections.abc import Sequence

from kedro.pipeline import Pipeline

from deepfake_kedro.pipelines.ensemble_training.nodes import train_ensemble
from deepfake_kedro.pipelines.feature_extraction.pipeline import node_reading_branches
from deepfake_kedro.project import branches as configured_branches


def create_pipeline(
    branches: Sequence[str] | None = None, trainable: Sequence[str] | None = None, **kwargs
) -> Pipeline:
    """The pipeline; ``branches`` (frozen, read from their model-input features) and
    ``trainable`` (trained here from pixels) default to the configured ones
    (``feature_extraction.backbones``). With a trainable branch the node also reads the
    images, the backbones' parameters, the augmentation and the synthetic fakes."""
    if trainable is None:
        trainable = configured_branches(trainable=True) if branches is None else []
    inputs = {
        "split_manifest": "split_manifest",
        "dataset_fingerprint": "dataset_fingerprint",
        "training_state": "training_state",
        "params": "params:ensemble_training",
    }
    if trainable:
        inputs |= {
            "raw_images": "raw_images",
            "augmentation": "params:feature_extraction.augmentation",
            "backbones": "params:feature_extraction.backbones",
            "synthetic_fakes": "params:feature_extraction.synthetic_fakes",
        }
    training = node_reading_branches(
        train_ensemble,
        inputs=inputs,
        outputs=["fusion_checkpoint", "training_metrics", "training_curves", "training_tags"],
        name="train_ensemble_node",
        branches=branches,
        trainable=False,
    )
    return Pipeline([training], tags=["training", "ensemble_training"])
