"""Project pipelines."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline import pipeline_ml_factory
from kedro_mlflow.pipeline.pipeline_ml import KedroMlflowPipelineMLError, PipelineML

from deepfake_kedro.inference.packaging import log_model_kwargs
from deepfake_kedro.pipelines.inference import create_model_pipeline
from deepfake_kedro.pipelines.inference.pipeline import INPUT_NAME

logger = logging.getLogger(__name__)

# Pipelines that make up a full training run, in data-flow order.
TRAINING_PIPELINES = (
    "data_ingestion",
    "feature_extraction",
    "ensemble_training",
    "validation",
    "registration",
)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    - ``__default__``: the training pipeline end to end, bound with kedro-mlflow's
      ``pipeline_ml_factory`` to the inference pipeline: at the end of the run the inference
      pipeline (with the run's checkpoint and operating threshold) is logged as the run's
      MLflow model, which the registration hook then registers if validation passed.
    - ``registration``: the same binding on its own, to (re-)register the last trained model
      without retraining (``kedro run --pipelines registration``).
    - ``inference``: batch scoring with a registered version; ``inference_model``: the
      pipeline inside the registered model (Kedro-Viz shows it; it also runs locally on the
      last checkpoint).

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    # Kedro 1.7 imports only the pipelines a `kedro run --pipelines ...` asks for.
    pipelines = find_pipelines(raise_errors=True)
    model = create_model_pipeline()
    pipelines["inference_model"] = model
    if all(name in pipelines for name in TRAINING_PIPELINES):
        training = Pipeline([])  # kedro-mlflow's PipelineML does not support sum() from 0
        for name in TRAINING_PIPELINES:
            training += pipelines[name]
        pipelines["__default__"] = _bind(training, model)
    if "registration" in pipelines:
        pipelines["registration"] = _bind(pipelines["registration"], model)
    return pipelines


class TrainingPipelineML(PipelineML):
    """kedro-mlflow's ``PipelineML`` that also runs a part of training.

    ``kedro run --nodes ...`` / ``--to-nodes ...`` on ``__default__`` filter the pipeline
    (Kedro's public ``Pipeline.filter``); a filter may select nodes that do not produce what
    the inference pipeline needs (checkpoint, validation results), which ``PipelineML``
    refuses. Here such a part runs as a plain pipeline, and no model is logged or registered
    for it.
    """

    def filter(self, *args: Any, **kwargs: Any) -> Pipeline:
        try:
            return super().filter(*args, **kwargs)
        except KedroMlflowPipelineMLError:
            logger.warning(
                "This run covers only part of training: no model is logged or registered"
            )
            return Pipeline(self.training.filter(*args, **kwargs).nodes)


def _bind(training: Pipeline, inference: Pipeline) -> Pipeline:
    bound = pipeline_ml_factory(
        training=training,
        inference=inference,
        input_name=INPUT_NAME,
        log_model_kwargs=log_model_kwargs(),
    )
    return TrainingPipelineML(
        nodes=bound.nodes,
        inference=bound.inference,
        input_name=bound.input_name,
        kpm_kwargs=bound.kpm_kwargs,
        log_model_kwargs=bound.log_model_kwargs,
    )
