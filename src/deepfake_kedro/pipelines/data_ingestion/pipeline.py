"""Wiring of the data_ingestion pipeline."""

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.data_ingestion.nodes import (
    fingerprint_dataset,
    report_data_quality,
    split_dataset,
    validate_raw_data,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                validate_raw_data,
                inputs=["raw_manifest", "raw_images", "params:data_ingestion"],
                outputs=["validated_manifest", "manifest_problems"],
                name="validate_raw_data_node",
            ),
            Node(
                report_data_quality,
                inputs=["validated_manifest", "manifest_problems", "params:data_ingestion"],
                outputs=["data_quality_report", "data_quality_plot"],
                name="report_data_quality_node",
            ),
            Node(
                split_dataset,
                inputs=["validated_manifest", "params:data_ingestion"],
                outputs="split_manifest",
                name="split_dataset_node",
            ),
            Node(
                fingerprint_dataset,
                inputs="split_manifest",
                outputs="dataset_fingerprint",
                name="fingerprint_dataset_node",
            ),
        ],
        tags=["training", "data_ingestion"],
    )
