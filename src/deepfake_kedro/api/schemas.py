"""Request and response bodies of the training API (the OpenAPI schema's components).

Hyperparameter overrides mirror :class:`~deepfake_kedro.training.config.TrainingConfig` field
by field (every field optional, the same limits), so the schema follows the training config.
Every float of a request must be finite: JSON has no ``NaN`` or ``Infinity`` (Python's parser
accepts them), a run cannot use them, and the job's status could not report them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model

from deepfake_kedro.training.config import TrainingConfig

#: The configuration of every request body: unknown keys and non-finite floats are a 422.
REQUEST_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


def _partial_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    """``model`` with every field optional (``None``: keep the configured value), same limits."""
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        annotation = info.annotation
        if get_origin(annotation) is None and isinstance(annotation, type) and issubclass(
            annotation, BaseModel
        ):
            annotation = _partial_model(annotation, f"{name}{annotation.__name__}")
        optional = annotation | None
        if info.metadata:
            optional = Annotated[optional, *info.metadata]
        fields[key] = (optional, Field(None, description=info.description))
    return create_model(name, __config__=REQUEST_CONFIG, **fields)


Hyperparameters = _partial_model(TrainingConfig, "Hyperparameters")
Hyperparameters.__doc__ = (
    "Overrides of the project's `ensemble_training` parameters (deepfake_kedro.training."
    "TrainingConfig); unset fields keep the configured value."
)

Version = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$", description="Model version number")]


class TrainRequest(BaseModel):
    """A training run of the default pipeline on one manifest."""

    model_config = REQUEST_CONFIG

    dataset_path: str = Field(
        ...,
        min_length=1,
        max_length=2048,
        description="Manifest CSV: a local path or s3:// URI under an allowed root; image "
        "paths in it are relative to its folder.",
        examples=["data/01_raw/manifest.csv"],
    )
    model_type: Literal["ensemble"] = "ensemble"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)  # type: ignore[valid-type]
    validation_threshold: float = Field(
        0.95, ge=0, le=1, description="Minimum test ROC AUC for the validation gate."
    )


class ValidateRequest(BaseModel):
    """Validation of a registered version."""

    model_config = REQUEST_CONFIG

    version: Version
    validation_threshold: float | None = Field(None, ge=0, le=1)


class DeployRequest(BaseModel):
    """Make a version the champion."""

    model_config = REQUEST_CONFIG

    version: Version
    force: bool = Field(False, description="Deploy even if the version failed validation.")


class Progress(BaseModel):
    nodes_done: int | None = None
    nodes_total: int | None = None
    epoch: int | None = None
    epochs_total: int | None = None


class JobOut(BaseModel):
    """A job as the API reports it."""

    job_id: str
    kind: Literal["train", "validate"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stage: str | None = Field(None, description="Pipeline the current node belongs to")
    node: str | None = None
    progress: Progress
    attempts: int
    max_attempts: int
    cancel_requested: bool
    mlflow_run_id: str | None = None
    registered_version: str | None = None
    error: str | None = None
    request: dict[str, Any]
    params: dict[str, Any] = Field(description="Kedro runtime parameters of the run")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class ModelVersionOut(BaseModel):
    version: str
    aliases: list[str]
    created: str | None = None
    validation_passed: str | None = None
    gate_metrics: dict[str, float | None]
    dataset_fingerprint: str | None = None
    run_id: str | None = None


class ModelsOut(BaseModel):
    model_name: str
    versions: list[ModelVersionOut]


class DeployOut(BaseModel):
    model_name: str
    version: str
    champion: str | None
    previous_champion: str | None
    message: str


class HealthCheck(BaseModel):
    ok: bool
    detail: str


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, HealthCheck]


class ErrorOut(BaseModel):
    detail: Any


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation that answers ``codes`` with an :class:`ErrorOut`."""
    return {code: {"model": ErrorOut} for code in codes}


def json_safe(value: Any) -> Any:
    """``value`` with each non-finite float written as its JavaScript name (``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``), so that it encodes as strict JSON.

    A 422 echoes the offending ``input``; when that input is ``NaN`` the error body itself
    could not be encoded otherwise.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def job_out(job: Mapping[str, Any]) -> JobOut:
    """A job-store record as the API reports it."""
    return JobOut(
        job_id=job["id"],
        kind=job["kind"],
        state=job["state"],
        stage=job["stage"],
        node=job["node"],
        progress=Progress(
            nodes_done=job["nodes_done"],
            nodes_total=job["nodes_total"],
            epoch=job["epoch"],
            epochs_total=job["epochs_total"],
        ),
        attempts=job["attempts"],
        max_attempts=job["max_attempts"],
        cancel_requested=job["cancel_requested"],
        mlflow_run_id=job["mlflow_run_id"],
        registered_version=job["registered_version"],
        error=job["error"],
        request=job["request"],
        params=job["params"],
        created_at=job["created_at"],
        started_at=job["started_at"],
        finished_at=job["finished_at"],
        updated_at=job["updated_at"],
    )
