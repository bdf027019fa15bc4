"""`kedro models deploy|rollback` as a user runs them: one-line errors, rollback's refusal.

Real `kedro` processes on a copy of the project whose own SQLite store holds stand-in
versions registered here (no training).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from kedro_project import env, kedro, make_project, tiny_parameters
from mlflow import MlflowClient
from registry_helpers import EXPERIMENT, NAME, register

from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import deploy

pytestmark = pytest.mark.slow

HOLD = """
import sys, time
from deepfake_kedro.project_lock import project_lock
with project_lock("kedro retrain", project=sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Versions 1 (passed, champion) and 2 (failed validation, previous-champion)."""
    path = make_project(tmp_path_factory.mktemp("models_project"), tiny_parameters())
    uri = f"sqlite:///{path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient(uri)
        client.create_experiment(EXPERIMENT, artifact_location=(path / "mlartifacts").as_uri())
        config = RegistryConfig()
        register(client, config, 0.95)
        with mlflow.start_run(experiment_id=client.get_experiment_by_name(EXPERIMENT).experiment_id):
            mlflow.log_text("flavors: {}\n", "model/MLmodel")
            run_id = mlflow.active_run().info.run_id
        client.create_model_version(
            NAME, f"runs:/{run_id}/model", run_id=run_id,
            tags={"validation_passed": "false", "validation_failed": "test AUC 0.61 < 0.95"},
        )
        deploy(client, config, "2", force=True)
        deploy(client, config, "1")
    finally:
        mlflow.set_tracking_uri(previous)
    return path


def _aliases(project: Path) -> dict[str, str]:
    model = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_registered_model(NAME)
    return {alias: str(version) for alias, version in model.aliases.items()}


def _error(result: subprocess.CompletedProcess) -> list[str]:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("Error: ")), len(lines))
    return lines[start:]


def test_deploy_of_a_version_that_is_not_a_number_is_one_line(project):
    result = kedro(project, "models", "deploy", "abc", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    assert _error(result) == [
        "Error: 'abc' is not a version of 'deepfake-detector': versions are whole numbers "
        "from 1 (existing: 2, 1; list them with list_versions / the list command)"
    ], output


def test_rollback_to_a_failed_version_is_refused_unless_forced(project):
    assert _aliases(project)["champion"] == "1" and _aliases(project)["previous-champion"] == "2"
    result = kedro(project, "models", "rollback", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    (line,) = _error(result)
    assert line.startswith("Error: refusing to roll back to version 2 of 'deepfake-detector'")
    assert "test AUC 0.61 < 0.95" in line and "--force" in line
    assert _aliases(project)["champion"] == "1"

    result = kedro(project, "models", "rollback", "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[forced: it did not pass validation]" in result.stdout
    assert _aliases(project)["champion"] == "2" and _aliases(project)["previous-champion"] == "1"
    # Back as it was, for the next test: 1 passed validation, so no --force is needed.
    assert kedro(project, "models", "rollback", check=False).returncode == 0
    assert _aliases(project)["champion"] == "1"


def test_deploy_while_another_writer_holds_the_project_is_refused(project):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(project)], stdout=subprocess.PIPE, text=True, env=env()
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = kedro(project, "models", "deploy", "2", "--force", check=False)
    finally:
        holder.terminate()
        holder.wait()
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    (line,) = _error(result)
    assert line.startswith("Error: `kedro models deploy 2` not started: the project is locked")
    assert f"pid {holder.pid} (`kedro retrain`" in line
    assert _aliases(project)["champion"] == "1"
