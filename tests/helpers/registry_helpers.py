"""Registering stand-in model versions on a real MLflow store, for the registry tests."""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow import MlflowClient

from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import RegistrationResult, register_model

NAME = "deepfake-detector"
EXPERIMENT = "deepfake_kedro"
PASSED = {"passed": True, "failed": [], "summary": "PASSED: 7 checks passed, 0 skipped"}


def experiment_id(client: MlflowClient) -> str:
    return client.get_experiment_by_name(EXPERIMENT).experiment_id


def logged_run(client: MlflowClient) -> str:
    """A real finished run with a tiny artifact standing in for the model (its ``MLmodel``
    file is what mlflow.register_model looks for)."""
    with mlflow.start_run(experiment_id=experiment_id(client)) as run:
        mlflow.log_text("tiny model", "model/model.txt")
        mlflow.log_text("flavors: {}\n", "model/MLmodel")
    return run.info.run_id


def register(
    client: MlflowClient,
    config: RegistryConfig,
    auc: float,
    *,
    fingerprint: str = "fp-a",
    run_id: str | None = None,
    verdict: dict | None = None,
    metrics: dict | None = None,
    champion_baseline: dict[str, Any] | None = None,
) -> RegistrationResult:
    """Register a logged run as registration does, with ``test_auc``/``test_eer`` from ``auc``."""
    run_id = run_id or logged_run(client)
    return register_model(
        client,
        config,
        model_uri=f"runs:/{run_id}/model",
        verdict=verdict or PASSED,
        metrics=metrics or {"test_auc": auc, "test_eer": 1 - auc},
        tags={
            "dataset_fingerprint": fingerprint,
            "git_commit": "abc1234",
            "backbones": "resnet50,clip",
            "weights": "IMAGENET1K_V2,openai",
            "validation_report": f"runs:/{run_id}/validation_report.html",
        },
        champion_baseline=champion_baseline,
    )


def aliases(client: MlflowClient, name: str = NAME) -> dict[str, str]:
    # The SQL store gives versions as ints; the operations use strings.
    return {alias: str(v) for alias, v in client.get_registered_model(name).aliases.items()}
