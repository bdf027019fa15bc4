"""The FastAPI application of the training API (OpenAPI docs at ``/docs``).

Build it with :func:`create_app` from a :class:`ProjectInfo` (the project's parameters and
MLflow store, loaded once by :func:`load_project`) and the :class:`ApiConfig`. Models are read
from and deployed in the MLflow registry only; the job store records jobs, nothing else.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from deepfake_kedro.api.config import ApiConfig, Role
from deepfake_kedro.api.jobs import STATES, TERMINAL, IdempotencyConflict, JobNotFound, JobStore
from deepfake_kedro.api.security import (
    BodySizeLimitMiddleware,
    DatasetPathError,
    check_dataset_path,
    require_role,
)
from deepfake_kedro.api.worker import Worker, kedro_run_command
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.training.config import TrainingConfig

logger = logging.getLogger(__name__)

API_VERSION = "1.0.0"


# ---------------------------------------------------------------------- project
@dataclass
class ProjectInfo:
    """What the API needs of the Kedro project, loaded once at start.

    Attributes:
        path: Project folder (where jobs run ``kedro run``).
        env: Kedro environment passed to every job (``None``: Kedro's default, ``local``).
        training_params: The configured ``ensemble_training`` parameters (overrides merge over them).
        registry: The ``registry`` parameters.
        tracking_uri: MLflow tracking store of the project (from ``mlflow.yml``).
        registry_uri: MLflow registry store.
    """

    path: Path
    env: str | None
    training_params: dict[str, Any]
    registry: RegistryConfig
    tracking_uri: str
    registry_uri: str
    validation_params: dict[str, Any] = field(default_factory=dict)


def load_project(env: str | None = None) -> ProjectInfo:
    """Load the project the process runs in, as ``kedro run --env <env>`` would.

    Raises:
        ValueError: When the ``ensemble_training`` or ``registry`` parameters are invalid.
    """
    import mlflow

    from deepfake_kedro.commands._project import project_context, project_path

    with project_context(env) as context:
        params = context.params
        tracking_uri, registry_uri = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    training = dict(params.get("ensemble_training") or {})
    TrainingConfig.model_validate(training)  # fail at start, not on the first request
    return ProjectInfo(
        path=project_path(),
        env=env,
        training_params=training,
        registry=RegistryConfig.model_validate(params.get("registry") or {}),
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        validation_params=dict(params.get("validation") or {}),
    )


# ---------------------------------------------------------------------- schemas
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
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


Hyperparameters = _partial_model(TrainingConfig, "Hyperparameters")
Hyperparameters.__doc__ = (
    "Overrides of the project's `ensemble_training` parameters (deepfake_kedro.training."
    "TrainingConfig); unset fields keep the configured value."
)

Version = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$", description="Model version number")]


class TrainRequest(BaseModel):
    """A training run of the default pipeline on one manifest."""

    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

    version: Version
    validation_threshold: float | None = Field(None, ge=0, le=1)


class DeployRequest(BaseModel):
    """Make a version the champion."""

    model_config = ConfigDict(extra="forbid")

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


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


def _job_out(job: Mapping[str, Any]) -> JobOut:
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


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursively for nested mappings."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------- app
def create_app(project: ProjectInfo, config: ApiConfig, *, start_worker: bool = True) -> FastAPI:
    """The API on ``project`` with ``config``; the worker starts with the app's lifespan."""
    from mlflow import MlflowClient

    jobs_dir = config.resolved_jobs_dir(project.path)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(config.resolved_database_url(project.path))
    client = MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.registry_uri)
    model_name = project.registry.model_name

    def find_registered_version(run_id: str) -> str | None:
        try:
            found = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
        except Exception:
            logger.exception("Could not look up the version registered by run %s", run_id)
            return None
        return str(max(int(mv.version) for mv in found)) if found else None

    worker = Worker(store, config, project.path, find_registered_version)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_worker:
            worker.start()
        try:
            yield
        finally:
            if start_worker:
                worker.stop(timeout_s=config.cancel_grace_s + 10)

    app = FastAPI(
        title="deepfake_kedro training API",
        version=API_VERSION,
        description="Train, validate and deploy the deepfake detector through the project's "
        "Kedro pipelines; models live in the MLflow registry.",
        lifespan=lifespan,
    )
    app.state.token_roles = config.token_roles()
    app.state.store = store
    app.state.worker = worker
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_body_bytes)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("Unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(error).__name__}"}, status_code=500)

    reader = Depends(require_role(Role.read))
    trainer = Depends(require_role(Role.trainer))
    operator = Depends(require_role(Role.operator))

    def submit(kind: str, request: dict[str, Any], params: dict[str, Any], pipeline: str,
               key: str | None, epochs: int | None = None) -> JSONResponse:
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
        return JSONResponse(
            _job_out(job).model_dump(mode="json"), status_code=202, headers=headers
        )

    idempotency_header = Header(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="The same key returns the same job instead of starting another.",
    )

    @app.post(
        "/v1/train/ensemble",
        status_code=202,
        response_model=JobOut,
        responses=_errors(400, 401, 403, 409, 413, 422),
        tags=["jobs"],
    )
    def train_ensemble(
        body: TrainRequest,
        idempotency_key: str | None = idempotency_header,
        _role: Role | None = trainer,
    ) -> JSONResponse:
        """Queue a training run of the default pipeline (ingestion to registration)."""
        overrides = body.hyperparameters.model_dump(exclude_none=True)
        try:
            training = TrainingConfig.model_validate(deep_merge(project.training_params, overrides))
        except ValidationError as err:
            raise RequestValidationError(
                [
                    {"type": e["type"], "loc": ("body", "hyperparameters", *e["loc"]),
                     "msg": e["msg"], "input": e.get("input")}
                    for e in err.errors(include_url=False)
                ]
            ) from err
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
        return submit("train", body.model_dump(mode="json", exclude_none=True), params, "__default__",
                      idempotency_key, training.epochs)

    @app.get("/v1/train/status/{job_id}", response_model=JobOut,
             responses=_errors(401, 403, 404), tags=["jobs"])
    def job_status(job_id: str, _role: Role | None = reader) -> JobOut:
        """State, stage, node, progress, timestamps, MLflow run and version of a job."""
        try:
            return _job_out(store.get(job_id))
        except JobNotFound as err:
            raise HTTPException(404, f"no job {job_id!r}") from err

    @app.get("/v1/train/jobs", response_model=JobPage, responses=_errors(401, 403), tags=["jobs"])
    def list_jobs(
        state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
        limit: int = Query(20, ge=1, le=200),
        offset: int = Query(0, ge=0, le=10**9),
        _role: Role | None = reader,
    ) -> JobPage:
        """Jobs, newest first, optionally only those in one state."""
        items, total = store.list(state=state, limit=limit, offset=offset)
        return JobPage(items=[_job_out(j) for j in items], total=total, limit=limit, offset=offset)

    @app.post("/v1/train/jobs/{job_id}/cancel", status_code=202, response_model=JobOut,
              responses=_errors(401, 403, 404, 409), tags=["jobs"])
    def cancel_job(job_id: str, _role: Role | None = trainer) -> JobOut:
        """Cancel a queued job at once, or stop a running one (its process group is terminated)."""
        try:
            before = store.get(job_id)
        except JobNotFound as err:
            raise HTTPException(404, f"no job {job_id!r}") from err
        if before["state"] in TERMINAL:
            raise HTTPException(409, f"job {job_id} is already {before['state']}")
        return _job_out(store.request_cancel(job_id))

    @app.get("/v1/train/models", response_model=ModelsOut,
             responses=_errors(401, 403, 503), tags=["models"])
    def list_models(_role: Role | None = reader) -> ModelsOut:
        """Registered versions, newest first, with aliases and gate metrics."""
        from deepfake_kedro.registry.operations import list_versions

        table = _registry_call(lambda: list_versions(client, project.registry))
        versions = []
        for row in table.to_dict(orient="records"):
            versions.append(
                ModelVersionOut(
                    version=str(row["version"]),
                    aliases=[a for a in str(row.get("aliases") or "").split(",") if a],
                    created=_clean(row.get("created")),
                    validation_passed=_clean(row.get("validation_passed")),
                    gate_metrics={
                        k.removeprefix("gate."): _clean(v) for k, v in row.items() if k.startswith("gate.")
                    },
                    dataset_fingerprint=_clean(row.get("dataset_fingerprint")),
                    run_id=_clean(row.get("run_id")),
                )
            )
        return ModelsOut(model_name=model_name, versions=versions)

    @app.post("/v1/train/validate", status_code=202, response_model=JobOut,
              responses=_errors(401, 403, 404, 409, 413, 422, 503), tags=["jobs"])
    def validate_version(
        body: ValidateRequest,
        idempotency_key: str | None = idempotency_header,
        _role: Role | None = trainer,
    ) -> JSONResponse:
        """Queue the validation pipeline on a registered version."""
        _existing_version(body.version)
        params: dict[str, Any] = {"model_uri": f"models:/{model_name}/{body.version}"}
        if body.validation_threshold is not None:
            params["validation"] = {"gate": {"validation_threshold": body.validation_threshold}}
        return submit("validate", body.model_dump(mode="json", exclude_none=True), params, "validation", idempotency_key)

    @app.post("/v1/train/deploy", response_model=DeployOut,
              responses=_errors(401, 403, 404, 409, 413, 422, 503), tags=["models"])
    def deploy_version(body: DeployRequest, _role: Role | None = operator) -> DeployOut:
        """Move `champion` to a version; the old champion becomes `previous-champion`.

        A version that failed validation is refused (409) unless `force` is true.
        """
        from deepfake_kedro.registry.operations import CHAMPION, PREVIOUS_CHAMPION, deploy

        _existing_version(body.version)
        try:
            message = _registry_call(
                lambda: deploy(client, project.registry, body.version, force=body.force)
            )
        except ValueError as err:
            raise HTTPException(409, str(err)) from err
        aliases = _registry_call(lambda: client.get_registered_model(model_name).aliases)
        return DeployOut(
            model_name=model_name,
            version=body.version,
            champion=_opt_str(aliases.get(CHAMPION)),
            previous_champion=_opt_str(aliases.get(PREVIOUS_CHAMPION)),
            message=str(message),
        )

    @app.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}},
             tags=["health"])
    def health() -> JSONResponse:
        """Reachability of the job database, the MLflow store and the allowed data roots."""
        checks = {
            "database": _check(store.ping, f"job store {_redact(store.url)}"),
            "mlflow": _check(lambda: client.search_experiments(max_results=1),
                             f"MLflow store {_redact(project.tracking_uri)}"),
            "data_store": _check(lambda: _data_roots_reachable(config, project.path),
                                 f"dataset roots {', '.join(config.allowed_dataset_roots)}"),
        }
        ok = all(check.ok for check in checks.values())
        out = HealthOut(status="ok" if ok else "degraded", checks=checks)
        return JSONResponse(out.model_dump(mode="json"), status_code=200 if ok else 503)

    def _existing_version(version: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_model_version(model_name, version)
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise HTTPException(404, f"model {model_name!r} has no version {version}") from err
            raise HTTPException(503, f"MLflow registry unavailable: {err}") from err

    return app


def _registry_call(call: Any) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as err:
        raise HTTPException(503, f"MLflow registry error: {err.message}") from err


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _redact(url: str) -> str:
    """A URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _check(probe: Any, what: str, timeout_s: float = 5.0) -> HealthCheck:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(probe).result(timeout=timeout_s)
        return HealthCheck(ok=True, detail=f"{what}: reachable")
    except Exception as err:  # report, never raise: health must answer
        return HealthCheck(ok=False, detail=f"{what}: {type(err).__name__}: {err}"[:500])
    finally:
        pool.shutdown(wait=False)


def _data_roots_reachable(config: ApiConfig, project: Path) -> None:
    for root in config.allowed_dataset_roots:
        if root.lower().startswith("s3://"):
            import fsspec

            fsspec.filesystem("s3").ls(root.removeprefix("s3://").removeprefix("S3://"))
            continue
        path = Path(root) if Path(root).is_absolute() else project / root
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            raise FileNotFoundError(f"{path} is not a readable folder")


__all__ = ["STATES", "ApiConfig", "ProjectInfo", "create_app", "load_project"]
