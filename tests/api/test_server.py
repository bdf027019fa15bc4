"""End to end against a real ``kedro api serve`` (uvicorn) on 127.0.0.1, in a project copy.

Jobs run the real pipelines on tiny demo data (40 images of 64 px, tiny backbones): submit,
idempotency, cancel, a crash of the server and its run while a job runs, recovery, completion
with an MLflow run (system metrics included) and a registered version, then validate and
deploy; a crash of the server alone, whose run goes on: followed by the next server, and
never trained again once it finished.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from kedro_project import OPEN_LIMITS, ROOT, env, kedro, make_project, tiny_parameters
from mlflow import MlflowClient

from deepfake_kedro.api.jobs import JobStore

pytestmark = pytest.mark.slow

READ, TRAINER, OPERATOR = "r" * 24, "t" * 24, "o" * 24
# Tiny data and backbones. Tiny data cannot meet the real gate; a job that passes it shows
# registration end to end (the jobs send their own validation_threshold).
PARAMETERS = tiny_parameters({
    "data_ingestion": {"num_workers": 1},
    "validation": {"robustness": {"max_images": 6}, "gate": OPEN_LIMITS},
})


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until ``predicate`` returns a truthy value (the deadline only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


class Server:
    """``python -m kedro api serve`` in the project, restartable."""

    def __init__(self, project: Path) -> None:
        self.project = project
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = project / "server.log"

    def start(self) -> None:
        tokens = f"read:{READ},trainer:{TRAINER},operator:{OPERATOR}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kedro", "api", "serve", "--port", str(self.port)],
            # Jobs inherit this environment. MLflow samples system metrics every 10 s by
            # default; a job on cached tiny data can finish sooner, so sample every second.
            cwd=self.project,
            env=env(DEEPFAKE_KEDRO_API_TOKENS=tokens, MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1"),
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        wait_for(self._up, 120, f"the server to start (log: {self.log})")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(60)

    def client(self, token: str | None = TRAINER) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = make_project(tmp_path_factory.mktemp("api_project"), PARAMETERS)
    kedro(path, "run", "--pipelines", "demo_data")
    return path


@pytest.fixture(scope="module")
def server(project):
    server = Server(project)
    server.start()
    yield server
    server.stop()


def gone(pid: int) -> bool:
    """The process has exited (a zombie its dead parent left counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def job(server: Server, job_id: str) -> dict[str, Any]:
    response = server.client(READ).get(f"/v1/train/status/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


TRAIN = {"dataset_path": "data/01_raw/manifest.csv",
         "hyperparameters": {"epochs": 2, "learning_rate": 0.01, "fusion": {"dropout": 0.1}},
         "validation_threshold": 0.0}


def test_health_docs_and_auth(server):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok"
    assert {name for name, c in health["checks"].items() if c["ok"]} == {"database", "mlflow", "data_store"}
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert "/v1/train/ensemble" in httpx.get(f"{server.url}/openapi.json").json()["paths"]

    assert server.client(None).post("/v1/train/ensemble", json=TRAIN).status_code == 401
    assert server.client("x" * 30).get("/v1/train/jobs").status_code == 401
    assert server.client(None).get("/v1/train/jobs").status_code == 401
    refused = server.client(READ).post("/v1/train/ensemble", json=TRAIN)
    assert refused.status_code == 403 and "trainer" in refused.json()["detail"]
    deploy = server.client(TRAINER).post("/v1/train/deploy", json={"version": "1"})
    assert deploy.status_code == 403 and "operator" in deploy.json()["detail"]


def test_bad_requests_are_refused_with_the_reason(server):
    api = server.client()
    bad = api.post("/v1/train/ensemble", json={**TRAIN, "hyperparameters": {"learning_rate": 5}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "hyperparameters", "learning_rate"]
    typo = api.post("/v1/train/ensemble", json={**TRAIN, "hyperparameters": {"epoch": 3}})
    assert typo.status_code == 422 and typo.json()["detail"][0]["loc"][-1] == "epoch"
    branches = api.post("/v1/train/ensemble", json={**TRAIN, "hyperparameters": {"branches": []}})
    assert branches.status_code == 422 and "branches" in branches.json()["detail"][0]["loc"]
    escape = api.post("/v1/train/ensemble", json={**TRAIN, "dataset_path": "data/01_raw/../../conf/base/api.yml"})
    assert escape.status_code == 400 and "'..'" in escape.json()["detail"]
    outside = api.post("/v1/train/ensemble", json={**TRAIN, "dataset_path": "/etc/passwd"})
    assert outside.status_code == 403 and "outside the allowed" in outside.json()["detail"]
    scheme = api.post("/v1/train/ensemble", json={**TRAIN, "dataset_path": "file:///etc/passwd"})
    assert scheme.status_code == 400
    huge = api.post("/v1/train/ensemble", json={**TRAIN, "pad": "x" * 100_000})
    assert huge.status_code == 413 and "limit" in huge.json()["detail"]
    assert api.get("/v1/train/status/nope").status_code == 404
    assert api.post("/v1/train/jobs/nope/cancel").status_code == 404
    assert api.get("/v1/train/jobs", params={"state": "done"}).status_code == 422
    assert api.get("/v1/train/jobs").json()["total"] == 0  # nothing refused was queued


def test_jobs_survive_a_server_crash_and_complete(server, project):
    api = server.client()
    first = api.post("/v1/train/ensemble", json=TRAIN, headers={"Idempotency-Key": "run-1"})
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    again = api.post("/v1/train/ensemble", json=TRAIN, headers={"Idempotency-Key": "run-1"})
    assert again.status_code == 202 and again.json()["job_id"] == job_id
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/v1/train/ensemble", json={**TRAIN, "validation_threshold": 0.5},
                     headers={"Idempotency-Key": "run-1"})
    assert other.status_code == 409

    # One job at a time: the second one waits in the queue and is cancelled there.
    queued = api.post("/v1/train/ensemble", json=TRAIN).json()["job_id"]
    cancelled = api.post(f"/v1/train/jobs/{queued}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert api.post(f"/v1/train/jobs/{queued}/cancel").status_code == 409

    wait_for(lambda: job(server, job_id)["stage"], 120, "the first job to start a node")
    server.stop(signal.SIGKILL)  # a crash: the job's kedro process is left behind
    store = JobStore(f"sqlite:///{project / 'data/api/jobs.db'}")
    assert store.get(job_id)["state"] == "running"
    orphan = store.get(job_id)["pid"]
    first_run = store.get(job_id)["mlflow_run_id"]
    assert first_run
    os.killpg(orphan, signal.SIGKILL)  # and the run dies too (the machine went down): half-done
    wait_for(lambda: gone(orphan), 60, "the orphaned run to die")
    server.start()
    assert job(server, job_id)["attempts"] in (1, 2)  # re-queued (and perhaps re-claimed)
    assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE

    done = wait_for(lambda: (j := job(server, job_id))["state"] in ("succeeded", "failed") and j,
                    400, "the job to finish")
    log = store.get(job_id)["log_path"]
    assert done["state"] == "succeeded", f"{done['error']}\n{Path(log).read_text()[-3000:]}"
    assert done["attempts"] == 2 and done["error"] is None
    assert done["progress"]["nodes_done"] == done["progress"]["nodes_total"] > 5
    assert done["progress"]["epochs_total"] == 2 and done["progress"]["epoch"] is not None
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert first_run != done["mlflow_run_id"]
    assert client.get_run(first_run).info.status == "KILLED"  # ended by the recovery
    run = client.get_run(done["mlflow_run_id"])
    assert run.data.params["ensemble_training.epochs"] == "2"
    assert run.data.params["ensemble_training.fusion.dropout"] == "0.1"
    assert any(key.startswith("system/cpu") for key in run.data.metrics)  # resource use
    registered = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    if (ROOT / "src/deepfake_kedro/pipelines/registration/pipeline.py").exists():
        assert registered, "the registration pipeline registered nothing"
    assert done["registered_version"] == (
        str(max(int(mv.version) for mv in registered)) if registered else None
    )

    page = api.get("/v1/train/jobs", params={"limit": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["items"][0]["job_id"] == queued
    only = api.get("/v1/train/jobs", params={"state": "succeeded"}).json()
    assert [j["job_id"] for j in only["items"]] == [job_id]


def test_models_validate_and_deploy(server, project):
    api = server.client(OPERATOR)
    versions = api.get("/v1/train/models").json()["versions"]
    if not versions:
        pytest.skip("no registration pipeline in this checkout: nothing registered to validate")
    version = versions[0]["version"]
    assert versions[0]["run_id"] and "champion" in versions[0]["aliases"]
    assert "test_auc" in versions[0]["gate_metrics"]

    assert api.post("/v1/train/validate", json={"version": "999"}).status_code == 404
    submitted = api.post("/v1/train/validate", json={"version": version, "validation_threshold": 0.5})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    command = JobStore(f"sqlite:///{project / 'data/api/jobs.db'}").get(job_id)["command"]
    assert command[1:] == ["-m", "kedro", "run", "--pipelines", "validation", "--params",
                           f"model_uri=models:/deepfake-detector/{version},"
                           "validation.gate.validation_threshold=0.5"]
    api.post(f"/v1/train/jobs/{job_id}/cancel")
    wait_for(lambda: job(server, job_id)["state"] == "cancelled", 60, "validation cancelled")

    deployed = api.post("/v1/train/deploy", json={"version": version})
    assert deployed.status_code == 200, deployed.text
    assert deployed.json()["champion"] == version
    assert api.post("/v1/train/deploy", json={"version": "999"}).status_code == 404


def test_cancel_a_running_job_stops_its_process(server, project):
    api = server.client()
    job_id = api.post("/v1/train/ensemble", json=TRAIN).json()["job_id"]
    store = JobStore(f"sqlite:///{project / 'data/api/jobs.db'}")
    pid = wait_for(lambda: store.get(job_id)["pid"], 120, "the job to start")
    run_id = wait_for(lambda: store.get(job_id)["mlflow_run_id"], 120, "the job's MLflow run")
    assert api.post(f"/v1/train/jobs/{job_id}/cancel").json()["cancel_requested"]
    final = wait_for(lambda: (j := job(server, job_id))["state"] != "running" and j, 60, "cancel")
    assert final["state"] == "cancelled" and final["error"] == "cancelled while running"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    status = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_run(run_id).info.status
    assert status == "KILLED"


def test_a_run_that_outlives_the_server_is_followed_and_never_trained_twice(server, project):
    api = server.client()
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    store = JobStore(f"sqlite:///{project / 'data/api/jobs.db'}")

    def versions(where: str = "name = 'deepfake-detector'") -> set[str]:
        return {str(mv.version) for mv in client.search_model_versions(where)}

    before = versions()
    job_id = api.post("/v1/train/ensemble", json=TRAIN).json()["job_id"]
    wait_for(lambda: job(server, job_id)["stage"], 120, "the job to start a node")
    orphan = store.get(job_id)["pid"]
    # Hold the run where it is (SIGSTOP) while the API crashes and restarts: a tiny run on a
    # quiet machine could otherwise finish in between, and the test would see no live run.
    os.kill(orphan, signal.SIGSTOP)
    try:
        server.stop(signal.SIGKILL)  # the API crashes; its kedro run goes on
        server.start()
        # The run still goes on: the new server follows it instead of starting a second one.
        followed = store.get(job_id)
    finally:
        os.kill(orphan, signal.SIGCONT)
    assert followed["state"] == "running" and followed["attempts"] == 1, followed["error"]
    assert followed["pid"] == orphan and followed["worker"].endswith(f":{server.process.pid}")

    server.stop(signal.SIGKILL)  # crash again; this time the run finishes while no API is up
    wait_for(lambda: gone(orphan), 400, "the orphaned run to finish")
    progress = json.loads((project / f"data/api/jobs/{job_id}/progress.json").read_text())
    assert progress["status"] == "finished", progress
    server.start()
    done = job(server, job_id)
    log = store.get(job_id)["log_path"]
    assert done["state"] == "succeeded", f"{done['error']}\n{Path(log).read_text()[-3000:]}"
    assert done["attempts"] == 1 and done["error"] is None
    assert done["progress"]["nodes_done"] == done["progress"]["nodes_total"]
    time.sleep(3)  # nothing is queued or started again
    for state in ("queued", "running"):
        assert api.get("/v1/train/jobs", params={"state": state}).json()["total"] == 0
    assert store.get(job_id)["attempts"] == 1

    run_id = done["mlflow_run_id"]
    assert client.get_run(run_id).info.status == "FINISHED"
    registered = versions(f"run_id = '{run_id}'")
    assert versions() - before == registered  # one run, at most one new version
    if (ROOT / "src/deepfake_kedro/pipelines/registration/pipeline.py").exists():
        assert len(registered) == 1 and done["registered_version"] == registered.pop()
