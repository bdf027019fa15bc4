"""One writer at a time, end to end: a training `kedro run` holds the project lock.

Real processes on a tiny copy of the project with its own SQLite MLflow store. While a
`kedro run` trains, `kedro retrain` and `kedro models deploy` are refused (the run is paused
with SIGSTOP meanwhile, so it holds the lock whatever the machine's speed; neither refused
command touches the store); then the run is stopped with SIGTERM, as an API cancel does, and
its MLflow run must end KILLED, not stay RUNNING.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kedro_project import (
    OPEN_GATE,
    demo_images,
    kedro,
    make_project,
    store_env,
    tiny_parameters,
)
from mlflow import MlflowClient

from deepfake_kedro.project_lock import LOCK_FILE, ProjectLock

pytestmark = pytest.mark.slow

PARAMETERS = tiny_parameters(OPEN_GATE, {"validation": {"robustness": {"enabled": False}}})
MODEL = "deepfake-detector"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = make_project(tmp_path_factory.mktemp("lock_project"), PARAMETERS, data_layers=False)
    demo_images(path / "data/01_raw")
    return path


def _env() -> dict[str, str]:
    environ = store_env()
    environ.pop("DEEPFAKE_KEDRO_LOCK_HOLDER", None)
    return environ


def _client(project: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def _owner(project: Path) -> dict:
    try:
        return json.loads((project / LOCK_FILE).with_name("project.lock.owner").read_text())
    except (OSError, ValueError):
        return {}


def _runs(project: Path) -> list:
    if not (project / "mlflow.db").exists():
        return []
    client = _client(project)
    experiment = client.get_experiment_by_name("deepfake_kedro")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def _wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {what}:\n{process.communicate()[0]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.5)


def test_a_training_run_holds_the_project_and_a_sigterm_ends_its_run_killed(project):
    run = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run"],
        cwd=project, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_for(lambda: _owner(project).get("pid") == run.pid, "it holds the lock", run)
        assert _owner(project)["command"] == "kedro run"
        os.kill(run.pid, signal.SIGSTOP)
        try:
            retrain = kedro(project, "retrain", check=False, environ=_env())
            deploy = kedro(project, "models", "deploy", "1", check=False, environ=_env())
        finally:
            os.kill(run.pid, signal.SIGCONT)

        assert retrain.returncode == 0, retrain.stdout + retrain.stderr
        refusal = [line for line in retrain.stdout.splitlines() if "not started" in line]
        assert len(refusal) == 1, retrain.stdout
        assert refusal[0].startswith("`kedro retrain` not started: the project is locked by ")
        assert f"pid {run.pid} (`kedro run`, since " in refusal[0]
        assert "Wait for it to finish" in refusal[0] and "retrain:" not in retrain.stdout
        assert deploy.returncode == 1 and "Traceback" not in deploy.stdout + deploy.stderr
        assert f"Error: `kedro models deploy 1` not started: the project is locked by pid {run.pid}" in deploy.stderr

        _wait_for(
            lambda: any(r.info.status == "RUNNING" for r in _runs(project)),
            "its MLflow run is open",
            run,
        )
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=300)[0]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    assert run.returncode == -signal.SIGTERM, output
    runs = _runs(project)
    assert [r.data.tags.get("mlflow.runName") for r in runs] == ["__default__"], output
    assert runs[0].info.status == "KILLED", output
    assert "ended as KILLED" in output
    assert _client(project).search_model_versions(f"name = '{MODEL}'") == []
    with ProjectLock("next writer", project=project, wait_s=0) as lock:  # free again
        assert lock.held
