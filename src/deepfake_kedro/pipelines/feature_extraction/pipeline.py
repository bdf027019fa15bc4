"""Wiring of feature_extraction: the same two nodes, namespaced once per backbone branch.

``resnet.feature_cache``, ``clip.feature_cache`` ... resolve through catalog factories, so a
branch's cache, report and model-input features sit side by side under its name.
"""

import warnings
from collections.abc import Callable

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.feature_extraction.nodes import collect_features, extract_features

BRANCHES = ("resnet", "clip", "spectral")


def node_reading_branches(
    func: Callable, inputs: dict[str, str], outputs: str | list[str], name: str
) -> Node:
    """A node outside the branches that also reads every ``<branch>.model_input_features``.

    Its function takes them as ``resnet_features``, ``clip_features``, ... Kedro warns about
    dots in dataset names; here they are its own namespacing, on purpose.
    """
    branch_inputs = {f"{branch}_features": f"{branch}.model_input_features" for branch in BRANCHES}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        return Node(func, inputs={**inputs, **branch_inputs}, outputs=outputs, name=name)


def create_branch_pipeline() -> Pipeline:
    """Extract (incrementally, into the branch's cache) then collect the manifest's features."""
    return Pipeline(
        [
            Node(
                extract_features,
                inputs=[
                    "split_manifest",
                    "raw_images",
                    "feature_cache",
                    "params:backbone",
                    "params:feature_extraction.runtime",
                    "params:feature_extraction.branches",
                ],
                outputs="extraction_report",
                name="extract_features_node",
            ),
            Node(
                collect_features,
                inputs=["split_manifest", "feature_cache", "extraction_report"],
                outputs="model_input_features",
                name="collect_features_node",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    branch = create_branch_pipeline()
    pipelines = Pipeline([])
    for name in BRANCHES:
        pipelines += Pipeline(
            branch,
            namespace=name,
            inputs={"split_manifest", "raw_images"},
            parameters={
                "params:backbone": f"params:feature_extraction.backbones.{name}",
                "params:feature_extraction.runtime": "params:feature_extraction.runtime",
                "params:feature_extraction.branches": "params:feature_extraction.branches",
            },
            tags=["training", "inference_features", name],
        )
    return pipelines
