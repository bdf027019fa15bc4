"""What the registry hooks do, on a real SQLite store: register a run's model, record a
re-validation."""

from __future__ import annotations

import re

import mlflow
import pytest
from mlflow import MlflowClient
from registry_helpers import NAME, PASSED
from registry_helpers import aliases as _aliases
from registry_helpers import logged_run as _run

from deepfake_kedro.registry import vocabulary as v
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import list_versions, register_model
from deepfake_kedro.registry.registration import record_revalidation, register_logged_model

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _request(verdict: dict = PASSED) -> dict:
    return {
        "verdict": verdict,
        "metrics": {"test_auc": 0.95},
        "tags": {v.TAG_FINGERPRINT: "fp-a", v.TAG_TRAINING_RUN_ID: "trainer"},
        "champion_baseline": None,
    }


def test_register_logged_model_tags_the_version_and_the_run(client):
    run_id = _run(client)
    client.set_tag(run_id, v.TAG_GIT_COMMIT, "abc1234")
    result = register_logged_model(client, _request(), {"model_name": NAME}, run_id, "model")

    assert result == {
        "model_name": NAME,
        "registered": True,
        "version": "1",
        "promoted": True,
        "reason": result["reason"],
        "champion": "1",
        "run_id": run_id,
    }
    assert _aliases(client) == {v.CHAMPION: "1", v.CHALLENGER: "1"}
    tags = client.get_model_version(NAME, "1").tags
    assert tags[v.TAG_GIT_COMMIT] == "abc1234"
    assert tags[v.TAG_REGISTERED_BY_RUN_ID] == run_id
    assert tags[v.TAG_VALIDATION_REPORT].endswith(v.VALIDATION_REPORT_ARTIFACT)
    assert tags[v.TAG_TRAINING_RUN_ID] == "trainer"
    assert tags[v.TAG_SOURCE_MODEL_URI] == f"runs:/{run_id}/model"
    assert TIMESTAMP.match(tags[v.TAG_CHAMPION_FROM])
    assert client.get_run(run_id).data.tags[v.RUN_TAG_REGISTERED_VERSION] == "1"
    logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/{v.REGISTRATION_RESULT_ARTIFACT}")
    assert logged == result
    assert TIMESTAMP.match(list_versions(client, RegistryConfig())["created"].iloc[0])


def test_register_logged_model_with_a_failed_verdict_registers_nothing(client):
    run_id = _run(client)
    failed = {"passed": False, "failed": ["test AUC 0.81 is below 0.95"], "summary": "FAILED"}
    result = register_logged_model(client, _request(failed), RegistryConfig(), run_id, "model")
    assert not result["registered"] and result["version"] is None
    assert "below 0.95" in result["reason"]
    assert client.search_model_versions(f"name = '{NAME}'") == []
    assert client.get_run(run_id).data.tags[v.RUN_TAG_REGISTERED_VERSION] == "none"


def test_record_revalidation_tags_the_version_and_moves_no_alias(client):
    register_logged_model(client, _request(), RegistryConfig(), _run(client), "model")
    validation_run = _run(client)
    uri = v.version_uri(NAME, 1)
    verdict = {"passed": False, "summary": "FAILED 1 of 7 checks"}

    tags = record_revalidation(client, uri, "1", verdict, validation_run)

    on_version = client.get_model_version(NAME, "1").tags
    assert {key: on_version[key] for key in tags} == tags
    assert on_version[v.TAG_LAST_VALIDATION_PASSED] == "false"
    assert on_version[v.TAG_LAST_VALIDATION_RUN_ID] == validation_run
    assert on_version[v.TAG_LAST_VALIDATION_SUMMARY] == "FAILED 1 of 7 checks"
    assert TIMESTAMP.match(on_version[v.TAG_LAST_VALIDATION_AT])
    assert client.get_run(validation_run).data.tags[v.RUN_TAG_VALIDATED_MODEL_URI] == uri
    assert _aliases(client) == {v.CHAMPION: "1", v.CHALLENGER: "1"}
    assert record_revalidation(client, uri, None, verdict, validation_run) is None


def test_a_client_on_another_store_registers_nothing(client, tmp_path):
    other = MlflowClient(f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(ValueError, match="mlflow.register_model registers on MLflow's active"):
        register_model(
            other,
            RegistryConfig(),
            model_uri=f"runs:/{_run(client)}/model",
            verdict=PASSED,
            metrics={"test_auc": 0.9},
            tags={},
        )
    assert client.search_model_versions(f"name = '{NAME}'") == []
