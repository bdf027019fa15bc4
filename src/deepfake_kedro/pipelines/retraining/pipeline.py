"""Wiring of the retraining pipeline: one node per check, then the decision.

Every intermediate is a persisted catalog entry (``conf/base/catalog_retraining.yml``), so each
node can run as its own Airflow task.
"""

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.feature_extraction.pipeline import node_reading_branches
from deepfake_kedro.pipelines.retraining.nodes import (
    check_data_freshness,
    check_feature_drift,
    check_for_champion,
    check_performance_degradation,
    decide_retraining,
    embed_for_checks,
    load_champion_info,
    prepare_current_data,
    select_new_data,
)


def create_pipeline(branches: Sequence[str] | None = None, **kwargs) -> Pipeline:
    """The pipeline; ``branches`` defaults to the configured ones (``feature_extraction.backbones``)."""
    embed = node_reading_branches(
        embed_for_checks,
        inputs={
            "current_manifest": "retraining_current_manifest",
            "new_data": "retraining_new_data",
            "champion": "retraining_champion",
            "raw_images": "raw_images",
            "runtime": "params:feature_extraction.runtime",
        },
        outputs="retraining_features",
        name="embed_for_checks_node",
        branches=branches,
        suffix="feature_cache",
    )
    return Pipeline(
        [
            Node(
                prepare_current_data,
                inputs=["raw_manifest", "raw_images", "params:data_ingestion"],
                outputs=["retraining_current_manifest", "retraining_current_fingerprint"],
                name="prepare_current_data_node",
            ),
            Node(
                load_champion_info,
                inputs=["mlflow_registry", "params:registry"],
                outputs="retraining_champion",
                name="load_champion_info_node",
            ),
            Node(
                check_for_champion,
                inputs="retraining_champion",
                outputs="retraining_check_champion",
                name="check_for_champion_node",
            ),
            Node(
                select_new_data,
                inputs=["retraining_current_manifest", "retraining_champion"],
                outputs="retraining_new_data",
                name="select_new_data_node",
            ),
            Node(
                check_data_freshness,
                inputs=[
                    "retraining_current_manifest",
                    "retraining_new_data",
                    "retraining_current_fingerprint",
                    "retraining_champion",
                    "params:retraining",
                ],
                outputs="retraining_check_freshness",
                name="check_data_freshness_node",
            ),
            embed,
            Node(
                check_performance_degradation,
                inputs=[
                    "retraining_new_data",
                    "retraining_features",
                    "retraining_champion",
                    "params:retraining",
                ],
                outputs="retraining_check_degradation",
                name="check_performance_degradation_node",
            ),
            Node(
                check_feature_drift,
                inputs=["retraining_features", "params:retraining"],
                outputs="retraining_check_drift",
                name="check_feature_drift_node",
            ),
            Node(
                decide_retraining,
                inputs=[
                    "retraining_check_champion",
                    "retraining_check_freshness",
                    "retraining_check_degradation",
                    "retraining_check_drift",
                    "retraining_champion",
                    "retraining_current_fingerprint",
                    "params:retraining",
                ],
                outputs=["retraining_decision", "retraining_metrics"],
                name="decide_retraining_node",
            ),
        ],
        tags=["retraining"],
    )
