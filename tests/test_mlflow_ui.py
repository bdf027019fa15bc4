"""`kedro mlflow ui` serves the project's SQLite store (conf/base/mlflow.yml), runs and artifacts.

A copy of the project (kedro_project.make_project, as tests/test_run.py does) whose mlflow.db
holds one run with an artifact, written with the MLflow client the way kedro-mlflow writes them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kedro_project import env, make_project
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def project(tmp_path) -> tuple[Path, str]:
    make_project(tmp_path, None, data_layers=False)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment(
        "deepfake_kedro", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run = client.create_run(experiment, run_name="__default__")
    client.log_metric(run.info.run_id, "validation.test_auc", 0.97)
    report = tmp_path / "validation_verdict.json"
    report.write_text(json.dumps({"passed": True}))
    client.log_artifact(run.info.run_id, str(report), "validation")
    client.set_terminated(run.info.run_id)
    return tmp_path, run.info.run_id


def test_kedro_mlflow_ui_serves_the_project_store(project):
    path, run_id = project
    port = free_port()
    # kedro-mlflow starts `mlflow ui` from PATH: as in an activated virtual environment.
    path_variable = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    log = (path / "ui.log").open("w")  # a file, not a pipe nobody drains
    server = subprocess.Popen(
        [sys.executable, "-m", "kedro", "mlflow", "ui", "--port", str(port)],
        cwd=path, env=env(PATH=path_variable), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: kedro, mlflow ui and its workers
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"kedro mlflow ui exited:\n{(path / 'ui.log').read_text()}"
            try:
                status, page = get(f"{base}/")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "kedro mlflow ui did not answer in 90 s"
                time.sleep(0.5)
        assert status == 200 and "<html" in page.lower()

        status, body = get(f"{base}/api/2.0/mlflow/experiments/get-by-name"
                           "?experiment_name=deepfake_kedro")
        assert status == 200, body
        experiment_id = json.loads(body)["experiment"]["experiment_id"]
        status, body = get(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}")
        assert status == 200, body
        run = json.loads(body)["run"]
        assert run["info"]["experiment_id"] == experiment_id
        assert {m["key"] for m in run["data"]["metrics"]} == {"validation.test_auc"}
        status, body = get(f"{base}/get-artifact?path=validation/validation_verdict.json"
                           f"&run_uuid={run_id}")
        assert status == 200 and json.loads(body) == {"passed": True}
        assert not (path / "mlruns").exists()  # not a default ./mlruns store
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
