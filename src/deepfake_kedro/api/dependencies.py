"""What the routes depend on: the project, the settings, the job store and the MLflow client.

:func:`~deepfake_kedro.api.app.create_app` puts them on ``app.state`` once; the routes get them
per request through ``Depends`` (the ``Annotated`` aliases below), together with the role a
route requires (:data:`READER`, :data:`TRAINER`, :data:`OPERATOR`) and the guards around
registry calls (:func:`registry_call`, :func:`require_version`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from mlflow import MlflowClient

from deepfake_kedro.api.config import ApiConfig, Role
from deepfake_kedro.api.jobs import JobStore
from deepfake_kedro.api.security import require_role
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.training.config import TrainingConfig

T = TypeVar("T")


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


def load_project(env: str | None = None, path: Path | None = None) -> ProjectInfo:
    """Load the project at ``path`` (default: the one the process runs in), as
    ``kedro run --env <env>`` would (:func:`deepfake_kedro.project.session`).

    Raises:
        ValueError: When the ``ensemble_training`` or ``registry`` parameters are invalid.
        deepfake_kedro.project.ProjectNotFoundError: When there is no project there.
    """
    import mlflow

    from deepfake_kedro.project import find_project, session

    path = path or find_project()
    with session(path, env) as kedro_session:
        params = kedro_session.load_context().params
        tracking_uri, registry_uri = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    training = dict(params.get("ensemble_training") or {})
    TrainingConfig.model_validate(training)  # fail at start, not on the first request
    return ProjectInfo(
        path=path,
        env=env,
        training_params=training,
        registry=RegistryConfig.model_validate(params.get("registry") or {}),
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        validation_params=dict(params.get("validation") or {}),
    )


# ---------------------------------------------------------------------- app state
def get_project(request: Request) -> ProjectInfo:
    """The project the app serves (``app.state.project``)."""
    return request.app.state.project


def get_config(request: Request) -> ApiConfig:
    """The API settings (``app.state.config``)."""
    return request.app.state.config


def get_store(request: Request) -> JobStore:
    """The job store (``app.state.store``)."""
    return request.app.state.store


def get_client(request: Request) -> MlflowClient:
    """The MLflow client of the project's tracking and registry stores (``app.state.client``)."""
    return request.app.state.client


Project = Annotated[ProjectInfo, Depends(get_project)]
Settings = Annotated[ApiConfig, Depends(get_config)]
Store = Annotated[JobStore, Depends(get_store)]
Client = Annotated[MlflowClient, Depends(get_client)]

READER = Depends(require_role(Role.read))
TRAINER = Depends(require_role(Role.trainer))
OPERATOR = Depends(require_role(Role.operator))


# ---------------------------------------------------------------------- registry guards
def registry_call(call: Callable[[], T]) -> T:
    """``call()``, with an MLflow error answered as 503."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as err:
        raise HTTPException(503, f"MLflow registry error: {err.message}") from err


def require_version(client: MlflowClient, model_name: str, version: str) -> None:
    """Answer 404 unless ``model_name`` has ``version`` (503 when the registry fails)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, version)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise HTTPException(404, f"model {model_name!r} has no version {version}") from err
        raise HTTPException(503, f"MLflow registry unavailable: {err}") from err
