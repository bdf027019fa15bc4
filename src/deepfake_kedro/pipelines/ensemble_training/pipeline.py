"""Wiring of ensemble_training."""

import warnings

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.ensemble_training.nodes import train_ensemble
from deepfake_kedro.pipelines.feature_extraction.pipeline import BRANCHES


def create_pipeline(**kwargs) -> Pipeline:
    with warnings.catch_warnings():
        # The inputs are the outputs of the namespaced feature_extraction branches
        # (`resnet.model_input_features`, ...): the dots are Kedro's namespacing, on purpose.
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        training = Node(
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
    return Pipeline([training], tags=["training", "ensemble_training"])
