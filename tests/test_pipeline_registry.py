"""The registered pipelines: what `kedro run --pipelines ...` can run, and how training binds
to the inference model."""

from __future__ import annotations

import pytest
from kedro.framework.startup import bootstrap_project
from kedro_mlflow.pipeline.pipeline_ml import PipelineML
from kedro_project import ROOT


@pytest.fixture(scope="module")
def pipelines():
    bootstrap_project(ROOT)
    from deepfake_kedro.pipeline_registry import register_pipelines

    return register_pipelines()


def test_default_is_training_end_to_end_bound_to_the_inference_model(pipelines):
    default = pipelines["__default__"]
    assert isinstance(default, PipelineML)
    names = {node.name for node in default.nodes}
    assert {"validate_raw_data_node", "train_ensemble_node", "decide_gate_node",
            "prepare_registration_node"} <= names
    assert default.input_name == "inference_images"
    assert {n.name for n in default.inference.nodes} == {"read_images_node", "score_images_node"}
    assert default.inference.outputs() == {"inference_predictions"}
    kwargs = default.log_model_kwargs
    assert kwargs["name"] == "detector" and kwargs["code_paths"]
    assert any(req.startswith("torch==") for req in kwargs["pip_requirements"])
    assert "image_bytes" in kwargs["signature"].inputs.input_names()


def test_a_resumed_run_still_logs_the_model(pipelines):
    resumed = pipelines["__default__"].filter(from_nodes=["decide_gate_node"])
    assert isinstance(resumed, PipelineML)


def test_part_of_training_runs_without_logging_a_model(pipelines):
    part = pipelines["__default__"].filter(node_names=["split_dataset_node"])
    assert not isinstance(part, PipelineML)
    assert [node.name for node in part.nodes] == ["split_dataset_node"]


def test_registration_alone_registers_the_last_checkpoint(pipelines):
    registration = pipelines["registration"]
    assert isinstance(registration, PipelineML)
    assert {"fusion_checkpoint", "validation_results"} <= registration.inputs()
    assert not isinstance(pipelines["inference"], PipelineML)
