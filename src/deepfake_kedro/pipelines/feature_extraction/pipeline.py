"""Wiring of feature_extraction: the same two nodes, namespaced once per frozen branch.

The branches are the keys of ``feature_extraction.backbones`` (:func:`deepfake_kedro.project.
branches`). ``<branch>.feature_cache``, ``<branch>.model_input_features`` ... resolve through
catalog factories, so a branch's cache, report and model-input features sit side by side
under its name and a new branch needs no catalog entry.

A trainable branch (``train_mode: finetune``, e.g. ``kind: srm_cnn``) has nothing to extract
before training: it learns from pixels inside ``ensemble_training``, so it gets no pipeline
here and no ``model_input_features``. Its ``feature_cache`` still exists: the scoring policy
caches the trained branch's features there, under the trained weights' identity.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import get_type_hints

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.feature_extraction.nodes import extract_features, gather_features
from deepfake_kedro.project import branches as configured_branches

#: Tag of the node that fans out over ``feature_extraction.runtime.num_shards``
#: (``shard_index`` 0..n-1, each its own run or Airflow mapped task).
SHARDED_TAG = "sharded"


def branch_datasets(
    suffix: str, branches: Sequence[str] | None = None, *, trainable: bool | None = None
) -> dict[str, str]:
    """``{branch: "<branch>.<suffix>"}`` for every branch (default: the configured ones;
    ``trainable`` False/True: only the frozen/trainable ones)."""
    names = branches if branches is not None else configured_branches(trainable=trainable)
    return {branch: f"{branch}.{suffix}" for branch in names}


def node_reading_branches(
    func: Callable,
    inputs: dict[str, str],
    outputs: str | list[str],
    name: str,
    *,
    suffix: str = "model_input_features",
    branches: Sequence[str] | None = None,
    trainable: bool | None = None,
) -> Node:
    """A node outside the branches that also reads ``<branch>.<suffix>`` of every branch.

    ``func`` takes them as keyword arguments named after the branches (``**features``), so
    the node follows the list of branches. Kedro warns about dots in dataset names; here
    they are its own namespacing, on purpose.

    Args:
        func: The node function.
        inputs: Its other inputs.
        outputs: Its outputs.
        name: The node's name.
        suffix: The per-branch dataset read (``model_input_features``, ``feature_cache``).
        branches: The branches (default: the configured ones).
        trainable: With the configured branches: None reads every branch (feature caches
            exist for all); False only the frozen ones (``model_input_features`` exist only
            for them); True only the trainable ones.

    Raises:
        ValueError: if a branch is named like one of the node's other inputs.
    """
    per_branch = branch_datasets(suffix, branches, trainable=trainable)
    clash = sorted(set(per_branch) & set(inputs))
    if clash:
        raise ValueError(
            f"feature_extraction.backbones: branch name(s) {clash} clash with the inputs of "
            f"{name}; rename the branch"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        return Node(func, inputs={**inputs, **per_branch}, outputs=outputs, name=name)


def bind_branch(func: Callable, branch: str) -> Callable:
    """``func`` with its keyword ``branch`` bound: a plain function with ``func``'s name,
    docstring and (resolved) type hints minus ``branch``, so Kedro still validates the typed
    parameters before the run and Kedro-Viz shows ``func``."""

    def bound(*args, **kwargs):
        return func(*args, branch=branch, **kwargs)

    signature = inspect.signature(func)
    bound.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name != "branch"]
    )
    bound.__annotations__ = {k: v for k, v in get_type_hints(func).items() if k != "branch"}
    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(bound, attribute, getattr(func, attribute))
    return bound


def create_branch_pipeline(branch: str) -> Pipeline:
    """Extract (incrementally, into the branch's cache; one shard of
    ``feature_extraction.runtime.num_shards`` per run), then gather the shards' reports
    and collect the manifest's features."""
    return Pipeline(
        [
            Node(
                bind_branch(extract_features, branch),
                inputs=[
                    "split_manifest",
                    "raw_images",
                    "feature_cache",
                    "params:backbone",
                    "params:feature_extraction.runtime",
                    "params:feature_extraction.augmentation",
                    "params:feature_extraction.synthetic_fakes",
                ],
                outputs="extraction_shards",
                name="extract_features_node",
                tags=[SHARDED_TAG],
            ),
            Node(
                bind_branch(gather_features, branch),
                inputs=[
                    "split_manifest",
                    "feature_cache",
                    "extraction_shards",
                    "params:feature_extraction.runtime",
                ],
                outputs=["model_input_features", "extraction_report"],
                name="collect_features_node",
            ),
        ]
    )


def create_pipeline(branches: Sequence[str] | None = None, **kwargs) -> Pipeline:
    """One namespaced extraction pipeline per branch (default: the configured frozen
    branches; a trainable one has nothing to extract)."""
    pipelines = Pipeline([])
    for name in branches if branches is not None else configured_branches(trainable=False):
        pipelines += Pipeline(
            create_branch_pipeline(name),
            namespace=name,
            inputs={"split_manifest", "raw_images"},
            parameters={
                "params:backbone": f"params:feature_extraction.backbones.{name}",
                "params:feature_extraction.runtime": "params:feature_extraction.runtime",
                "params:feature_extraction.augmentation": "params:feature_extraction.augmentation",
                "params:feature_extraction.synthetic_fakes": (
                    "params:feature_extraction.synthetic_fakes"
                ),
            },
            tags=["training", "inference_features", name],
        )
    return pipelines
