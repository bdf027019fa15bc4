"""Model routes: the registered versions, and deploying one as champion (MLflow registry only)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, HTTPException

from deepfake_kedro.api.config import Role
from deepfake_kedro.api.dependencies import (
    OPERATOR,
    READER,
    Client,
    Project,
    registry_call,
    require_version,
)
from deepfake_kedro.api.schemas import (
    DeployOut,
    DeployRequest,
    ModelsOut,
    ModelVersionOut,
    error_responses,
)
from deepfake_kedro.registry.vocabulary import (
    CHAMPION,
    GATE_PREFIX,
    PREVIOUS_CHAMPION,
    TAG_FINGERPRINT,
    TAG_VALIDATION_PASSED,
)

router = APIRouter(tags=["models"])


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _version_out(row: dict[str, Any]) -> ModelVersionOut:
    """One row of the registry's version table as the API reports it."""
    return ModelVersionOut(
        version=str(row["version"]),
        aliases=[a for a in str(row.get("aliases") or "").split(",") if a],
        created=_clean(row.get("created")),
        validation_passed=_clean(row.get(TAG_VALIDATION_PASSED)),
        gate_metrics={
            k.removeprefix(GATE_PREFIX): _clean(v)
            for k, v in row.items()
            if k.startswith(GATE_PREFIX)
        },
        dataset_fingerprint=_clean(row.get(TAG_FINGERPRINT)),
        run_id=_clean(row.get("run_id")),
    )


@router.get("/v1/train/models", response_model=ModelsOut,
            responses=error_responses(401, 403, 503))
def list_models(project: Project, client: Client, _role: Role | None = READER) -> ModelsOut:
    """Registered versions, newest first, with aliases and gate metrics."""
    from deepfake_kedro.registry.operations import list_versions

    table = registry_call(lambda: list_versions(client, project.registry))
    versions = [_version_out(row) for row in table.to_dict(orient="records")]
    return ModelsOut(model_name=project.registry.model_name, versions=versions)


@router.post("/v1/train/deploy", response_model=DeployOut,
             responses=error_responses(401, 403, 404, 409, 413, 422, 503))
def deploy_version(
    body: DeployRequest, project: Project, client: Client, _role: Role | None = OPERATOR
) -> DeployOut:
    """Move `champion` to a version; the old champion becomes `previous-champion`.

    A version that failed validation is refused (409) unless `force` is true; so is a deploy
    while another writer (a training run, `kedro retrain`) holds the project lock.
    """
    from deepfake_kedro.project_lock import LockHeldError, project_lock
    from deepfake_kedro.registry.operations import deploy

    model_name = project.registry.model_name
    require_version(client, model_name, body.version)
    try:
        with project_lock("POST /v1/train/deploy", project=project.path):
            message = registry_call(
                lambda: deploy(client, project.registry, body.version, force=body.force)
            )
    except (ValueError, LockHeldError) as err:
        raise HTTPException(409, str(err)) from err
    aliases = registry_call(lambda: client.get_registered_model(model_name).aliases)
    return DeployOut(
        model_name=model_name,
        version=body.version,
        champion=_opt_str(aliases.get(CHAMPION)),
        previous_champion=_opt_str(aliases.get(PREVIOUS_CHAMPION)),
        message=str(message),
    )
