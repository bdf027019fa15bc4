"""Wiring of the validation pipeline. A model reaches the registry only through its verdict."""

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.feature_extraction.pipeline import node_reading_branches
from deepfake_kedro.pipelines.validation.nodes import (
    decide_gate,
    evaluate_fairness,
    evaluate_performance,
    evaluate_robustness,
    report_validation,
    score_model_inputs,
)


def create_pipeline(branches: Sequence[str] | None = None, **kwargs) -> Pipeline:
    """The pipeline; ``branches`` defaults to the configured ones (``feature_extraction.backbones``)."""
    score = node_reading_branches(
        score_model_inputs,
        inputs={
            "split_manifest": "split_manifest",
            "fusion_checkpoint": "fusion_checkpoint",
            "raw_images": "raw_images",
            "runtime": "params:feature_extraction.runtime",
        },
        outputs="model_scores",
        name="score_model_inputs_node",
        branches=branches,
        suffix="feature_cache",
    )
    return Pipeline(
        [
            score,
            Node(
                evaluate_performance,
                inputs=["model_scores", "params:validation"],
                outputs="validation_performance",
                name="evaluate_performance_node",
            ),
            node_reading_branches(
                evaluate_robustness,
                inputs={
                    "model_scores": "model_scores",
                    "raw_images": "raw_images",
                    "fusion_checkpoint": "fusion_checkpoint",
                    "params": "params:validation",
                    "runtime": "params:feature_extraction.runtime",
                },
                outputs=["perturbed_scores", "validation_robustness"],
                name="evaluate_robustness_node",
                suffix="feature_cache",
                branches=branches,
            ),
            Node(
                evaluate_fairness,
                inputs=["model_scores", "validation_performance", "params:validation"],
                outputs="validation_fairness",
                name="evaluate_fairness_node",
            ),
            Node(
                decide_gate,
                inputs=[
                    "validation_performance",
                    "validation_robustness",
                    "validation_fairness",
                    "params:validation",
                ],
                outputs="validation_verdict",
                name="decide_gate_node",
            ),
            Node(
                report_validation,
                inputs=[
                    "validation_performance",
                    "validation_robustness",
                    "validation_fairness",
                    "validation_verdict",
                    "fusion_checkpoint",
                    "dataset_fingerprint",
                ],
                outputs=["validation_results", "validation_report", "validation_metrics"],
                name="report_validation_node",
            ),
        ],
        tags=["training", "validation"],
    )
