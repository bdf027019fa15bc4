"""Wiring of the registration pipeline.

The nodes decide; ``RegistrationHooks`` acts after kedro-mlflow has logged the inference
pipeline as the run's model (``pipeline_registry`` binds them with ``pipeline_ml_factory``).
"""

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.feature_extraction.pipeline import node_reading_branches
from deepfake_kedro.pipelines.registration.nodes import evaluate_champion, prepare_registration

REQUEST = "registration_request"


def create_pipeline(branches: Sequence[str] | None = None, **kwargs) -> Pipeline:
    """The pipeline; ``branches`` defaults to the configured ones (``feature_extraction.backbones``)."""
    champion = node_reading_branches(
        evaluate_champion,
        inputs={
            "champion_checkpoint": "champion_checkpoint",
            "split_manifest": "split_manifest",
            "raw_images": "raw_images",
            "validation": "params:validation",
            "runtime": "params:feature_extraction.runtime",
        },
        outputs="champion_evaluation",
        name="evaluate_champion_node",
        branches=branches,
        suffix="feature_cache",
    )
    return Pipeline(
        [
            champion,
            Node(
                prepare_registration,
                inputs=[
                    "validation_verdict",
                    "validation_results",
                    "dataset_fingerprint",
                    "fusion_checkpoint",
                    "champion_evaluation",
                    "params:registry",
                ],
                outputs=REQUEST,
                name="prepare_registration_node",
            ),
        ],
        tags=["training", "registration"],
    )
