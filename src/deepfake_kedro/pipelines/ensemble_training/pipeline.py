"""Wiring of ensemble_training."""

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.ensemble_training.nodes import train_ensemble
from deepfake_kedro.pipelines.feature_extraction.pipeline import BRANCHES


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                train_ensemble,
                inputs={
                    "split_manifest": "split_manifest",
                    "dataset_fingerprint": "dataset_fingerprint",
                    "training_state": "training_state",
                    "params": "params:ensemble_training",
                    **{f"{name}_features": f"{name}.model_input_features" for name in BRANCHES},
                },
                outputs=["fusion_checkpoint", "training_metrics", "training_curves", "training_tags"],
                name="train_ensemble_node",
            )
        ],
        tags=["training", "ensemble_training"],
    )
