"""What the registry hooks do once kedro-mlflow has logged the run's model.

kedro-mlflow logs the inference pipeline as the run's MLflow model only after the last node
ran, so a hook has to register it; the hooks only read what Kedro hands them and call these
functions, which hold the decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from mlflow import MlflowClient

from deepfake_kedro.lineage import git_commit
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import register_model
from deepfake_kedro.registry.vocabulary import (
    MAX_TAG_LENGTH,
    REGISTRATION_RESULT_ARTIFACT,
    RUN_TAG_REGISTERED_VERSION,
    RUN_TAG_VALIDATED_MODEL_URI,
    TAG_GIT_COMMIT,
    TAG_LAST_VALIDATION_AT,
    TAG_LAST_VALIDATION_PASSED,
    TAG_LAST_VALIDATION_RUN_ID,
    TAG_LAST_VALIDATION_SUMMARY,
    TAG_REGISTERED_BY_RUN_ID,
    TAG_VALIDATION_REPORT,
    VALIDATION_REPORT_ARTIFACT,
    parse_registry_uri,
)
from deepfake_kedro.values import utc_now

logger = logging.getLogger(__name__)


def register_logged_model(
    client: MlflowClient,
    request: Mapping[str, Any],
    config: RegistryConfig | Mapping[str, Any],
    run_id: str,
    model_artifact: str,
) -> dict[str, Any]:
    """Register ``runs:/<run_id>/<model_artifact>`` as a ``registration_request`` says.

    Adds the run's lineage to the request's tags (``git_commit``, the ``validation_report``
    URI, ``registered_by_run_id``), calls :func:`registry.operations.register_model` (new
    version -> ``challenger`` -> promotion if better; a failed verdict registers nothing),
    then tags the run ``registered_version`` and logs the result as
    ``registration/registration_result.json``.

    Args:
        client: Client on the run's tracking and registry store (MLflow's active one).
        request: Output of the ``prepare_registration`` node: ``verdict``, ``metrics``,
            ``tags`` and ``champion_baseline``.
        config: Registry settings (``params:registry``).
        run_id: The run that logged the model.
        model_artifact: The model's name in the run (kedro-mlflow's ``log_model_kwargs``).

    Returns:
        ``model_name``, ``registered``, ``version``, ``promoted``, ``reason``, ``champion``
        and ``run_id``.
    """
    config = config if isinstance(config, RegistryConfig) else RegistryConfig.model_validate(config)
    run = client.get_run(run_id)
    tags = {
        **request.get("tags", {}),
        TAG_GIT_COMMIT: run.data.tags.get(TAG_GIT_COMMIT) or git_commit() or "unknown",
        TAG_VALIDATION_REPORT: f"{run.info.artifact_uri.rstrip('/')}/{VALIDATION_REPORT_ARTIFACT}",
        TAG_REGISTERED_BY_RUN_ID: run_id,
    }
    outcome = register_model(
        client,
        config,
        model_uri=f"runs:/{run_id}/{model_artifact}",
        verdict=request["verdict"],
        metrics=request.get("metrics", {}),
        tags=tags,
        champion_baseline=request.get("champion_baseline"),
    )
    result = {"model_name": config.model_name, **asdict(outcome), "run_id": run_id}
    client.set_tag(run_id, RUN_TAG_REGISTERED_VERSION, outcome.version or "none")
    client.log_dict(run_id, result, REGISTRATION_RESULT_ARTIFACT)
    # register_model logged the outcome (promotion or the failed checks) once already.
    logger.debug("Registration: %s", outcome.reason)
    return result


def record_revalidation(
    client: MlflowClient,
    model_uri: str,
    version: str | None,
    verdict: Mapping[str, Any],
    run_id: str | None,
) -> dict[str, str] | None:
    """Tag a registered version with the outcome of validating it again; no alias moves.

    Writes ``last_validation_passed``, ``last_validation_at``, ``last_validation_run_id`` and
    ``last_validation_summary`` on the version, and ``validated_model_uri`` on the run.

    Args:
        client: Client on the registry store.
        model_uri: The ``--params model_uri=...`` that selected the version.
        version: The version validated (the checkpoint's ``registry_version``); ``None``
            tags nothing.
        verdict: The validation gate's verdict (``passed``, ``summary``).
        run_id: The validation run, or ``None`` when tracking was off.

    Returns:
        The version tags written, or ``None`` when there was no version.
    """
    name, _, _ = parse_registry_uri(model_uri)
    if not version:
        logger.info("No registered version behind %s: nothing to tag", model_uri)
        return None
    passed = bool(verdict.get("passed"))
    tags = {
        TAG_LAST_VALIDATION_PASSED: str(passed).lower(),
        TAG_LAST_VALIDATION_AT: utc_now(),
        TAG_LAST_VALIDATION_RUN_ID: run_id or "untracked",
        TAG_LAST_VALIDATION_SUMMARY: str(verdict.get("summary") or "")[:MAX_TAG_LENGTH],
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    if run_id is not None:
        client.set_tag(run_id, RUN_TAG_VALIDATED_MODEL_URI, model_uri)
    logger.info(
        "Validation of version %s of '%s': %s (tagged on the version)",
        version,
        name,
        "passed" if passed else "FAILED",
    )
    return tags
