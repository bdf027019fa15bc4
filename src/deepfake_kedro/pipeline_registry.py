"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Pipelines that make up a full training run, in data-flow order. Pipelines that exist
# (later issues add them) are summed into ``__default__``.
TRAINING_PIPELINES = (
    "data_ingestion",
    "feature_extraction",
    "ensemble_training",
    "validation",
    "registration",
)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``__default__`` is the training pipeline end to end. The sum starts from an empty
    ``Pipeline`` because kedro-mlflow's ``PipelineML`` does not support ``sum`` from ``0``.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = find_pipelines(raise_errors=True)
    default = Pipeline([])
    for name in TRAINING_PIPELINES:
        if name in pipelines:
            default += pipelines[name]
    pipelines["__default__"] = default
    return pipelines
