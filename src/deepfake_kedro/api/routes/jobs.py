"""Job routes: queue training and validation runs, follow, list and cancel them."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from deepfake_kedro.api.config import ApiConfig, Role
from deepfake_kedro.api.dependencies import (
    READER,
    TRAINER,
    Client,
    Project,
    ProjectInfo,
    Settings,
    Store,
    require_version,
)
from deepfake_kedro.api.jobs import TERMINAL, IdempotencyConflict, JobNotFound, JobStore
from deepfake_kedro.api.schemas import (
    JobOut,
    JobPage,
    TrainRequest,
    ValidateRequest,
    error_responses,
    job_out,
)
from deepfake_kedro.api.security import DatasetPathError, check_dataset_path
from deepfake_kedro.api.worker import kedro_run_command
from deepfake_kedro.mappings import deep_merge
from deepfake_kedro.training.config import TrainingConfig

router = APIRouter(tags=["jobs"])

IDEMPOTENCY_HEADER = Header(
    None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=200,
    description="The same key returns the same job instead of starting another.",
)


def _submit(
    store: JobStore,
    project: ProjectInfo,
    config: ApiConfig,
    *,
    kind: str,
    request: dict[str, Any],
    params: dict[str, Any],
    pipeline: str,
    key: str | None,
    epochs: int | None = None,
) -> JSONResponse:
    """Queue a ``kedro run`` of ``pipeline`` (or return the job of the same idempotency key)."""
    try:
        job, created = store.create(
            kind=kind,
            request=request,
            params=params,
            command=kedro_run_command(pipeline, params, project.env),
            max_attempts=config.max_attempts,
            epochs_total=epochs,
            idempotency_key=key,
        )
    except IdempotencyConflict as err:
        raise HTTPException(409, str(err)) from err
    headers = {"Location": f"/v1/train/status/{job['id']}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_out(job).model_dump(mode="json"), status_code=202, headers=headers)


def _training_config(project: ProjectInfo, overrides: dict[str, Any]) -> TrainingConfig:
    """The configured training parameters with ``overrides``; a bad value is a 422."""
    try:
        return TrainingConfig.model_validate(deep_merge(project.training_params, overrides))
    except ValidationError as err:
        raise RequestValidationError(
            [
                {"type": e["type"], "loc": ("body", "hyperparameters", *e["loc"]),
                 "msg": e["msg"], "input": e.get("input")}
                for e in err.errors(include_url=False)
            ]
        ) from err


@router.post(
    "/v1/train/ensemble",
    status_code=202,
    response_model=JobOut,
    responses=error_responses(400, 401, 403, 409, 413, 422),
)
def train_ensemble(
    body: TrainRequest,
    store: Store,
    project: Project,
    config: Settings,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    _role: Role | None = TRAINER,
) -> JSONResponse:
    """Queue a training run of the default pipeline (ingestion to registration)."""
    overrides = body.hyperparameters.model_dump(exclude_none=True)
    training = _training_config(project, overrides)
    try:
        location = check_dataset_path(body.dataset_path, config.allowed_dataset_roots, project.path)
    except DatasetPathError as err:
        raise HTTPException(err.status_code, str(err)) from err
    params: dict[str, Any] = {
        "raw_manifest_path": location.manifest,
        "raw_image_root": location.image_root,
    }
    if overrides:
        params["ensemble_training"] = overrides
    params["validation"] = {"gate": {"validation_threshold": body.validation_threshold}}
    return _submit(store, project, config, kind="train",
                   request=body.model_dump(mode="json", exclude_none=True), params=params,
                   pipeline="__default__", key=idempotency_key, epochs=training.epochs)


@router.get("/v1/train/status/{job_id}", response_model=JobOut,
            responses=error_responses(401, 403, 404))
def job_status(job_id: str, store: Store, _role: Role | None = READER) -> JobOut:
    """State, stage, node, progress, timestamps, MLflow run and version of a job."""
    try:
        return job_out(store.get(job_id))
    except JobNotFound as err:
        raise HTTPException(404, f"no job {job_id!r}") from err


@router.get("/v1/train/jobs", response_model=JobPage, responses=error_responses(401, 403))
def list_jobs(
    store: Store,
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    limit: int = Query(20, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10**9),
    _role: Role | None = READER,
) -> JobPage:
    """Jobs, newest first, optionally only those in one state."""
    items, total = store.list(state=state, limit=limit, offset=offset)
    return JobPage(items=[job_out(j) for j in items], total=total, limit=limit, offset=offset)


@router.post("/v1/train/jobs/{job_id}/cancel", status_code=202, response_model=JobOut,
             responses=error_responses(401, 403, 404, 409))
def cancel_job(job_id: str, store: Store, _role: Role | None = TRAINER) -> JobOut:
    """Cancel a queued job at once, or stop a running one (its process group is terminated)."""
    try:
        before = store.get(job_id)
    except JobNotFound as err:
        raise HTTPException(404, f"no job {job_id!r}") from err
    if before["state"] in TERMINAL:
        raise HTTPException(409, f"job {job_id} is already {before['state']}")
    return job_out(store.request_cancel(job_id))


@router.post("/v1/train/validate", status_code=202, response_model=JobOut,
             responses=error_responses(401, 403, 404, 409, 413, 422, 503))
def validate_version(
    body: ValidateRequest,
    store: Store,
    project: Project,
    config: Settings,
    client: Client,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    _role: Role | None = TRAINER,
) -> JSONResponse:
    """Queue the validation pipeline on a registered version."""
    model_name = project.registry.model_name
    require_version(client, model_name, body.version)
    params: dict[str, Any] = {"model_uri": f"models:/{model_name}/{body.version}"}
    if body.validation_threshold is not None:
        params["validation"] = {"gate": {"validation_threshold": body.validation_threshold}}
    return _submit(store, project, config, kind="validate",
                   request=body.model_dump(mode="json", exclude_none=True), params=params,
                   pipeline="validation", key=idempotency_key)
