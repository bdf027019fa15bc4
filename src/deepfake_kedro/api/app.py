"""The FastAPI application of the training API (OpenAPI docs at ``/docs``).

Build it with :func:`create_app` from a :class:`ProjectInfo` (the project's parameters and
MLflow store, loaded once by :func:`load_project`) and the :class:`ApiConfig`. The endpoints
live in :mod:`deepfake_kedro.api.routes` (one router per resource) and get the project, the
settings, the job store and the MLflow client from ``app.state`` through
:mod:`deepfake_kedro.api.dependencies`. Models are read from and deployed in the MLflow
registry only; the job store records jobs, nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from deepfake_kedro.api.config import ApiConfig
from deepfake_kedro.api.dependencies import ProjectInfo, load_project
from deepfake_kedro.api.jobs import STATES, JobStore
from deepfake_kedro.api.routes import ROUTERS
from deepfake_kedro.api.schemas import json_safe
from deepfake_kedro.api.security import BodySizeLimitMiddleware
from deepfake_kedro.api.tracking import MlflowRuns
from deepfake_kedro.api.worker import Worker

logger = logging.getLogger(__name__)

API_VERSION = "1.0.0"


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, encodable even when the rejected input is ``NaN`` or ``Infinity``."""
    return JSONResponse({"detail": json_safe(jsonable_encoder(error.errors()))}, status_code=422)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error: {type(error).__name__}"}, status_code=500)


def create_app(project: ProjectInfo, config: ApiConfig, *, start_worker: bool = True) -> FastAPI:
    """The API on ``project`` with ``config``; the worker starts with the app's lifespan."""
    from mlflow import MlflowClient

    config.resolved_jobs_dir(project.path).mkdir(parents=True, exist_ok=True)
    store = JobStore(config.resolved_database_url(project.path))
    client = MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.registry_uri)
    worker = Worker(store, config, project.path, MlflowRuns(client, project.registry.model_name))

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
    app.state.project = project
    app.state.config = config
    app.state.token_roles = config.token_roles()
    app.state.store = store
    app.state.client = client
    app.state.worker = worker
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
    for router in ROUTERS:
        app.include_router(router)
    return app


__all__ = ["STATES", "ApiConfig", "ProjectInfo", "create_app", "load_project"]
