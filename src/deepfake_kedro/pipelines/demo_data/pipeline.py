"""Wiring of the demo_data pipeline (not part of ``__default__``: it overwrites 01_raw)."""

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.demo_data.nodes import generate_demo_data


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                generate_demo_data,
                inputs="params:demo_data",
                outputs=["raw_manifest", "demo_images"],
                name="generate_demo_data_node",
            )
        ],
        tags=["demo"],
    )
