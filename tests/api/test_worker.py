"""The worker on real subprocesses: success, transient retry, failure, cancel, orphans, stop.

The jobs run small ``python -c`` scripts instead of ``kedro run`` (the end-to-end tests in
test_server.py run the real pipelines); the worker executes whatever command a job holds.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from deepfake_kedro.api.config import ApiConfig
from deepfake_kedro.api.jobs import JobStore
from deepfake_kedro.api.progress import PROGRESS_FILE_ENV, ProgressHooks
from deepfake_kedro.api.worker import RUN_CONFIG_PLACEHOLDER, Worker, kedro_run_command


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until ``predicate`` holds (the deadline only bounds a hang, it is not the check)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


@pytest.fixture
def setup(tmp_path: Path):
    config = ApiConfig(jobs_dir=str(tmp_path / "api"), retry_backoff_s=0, cancel_grace_s=2,
                       max_attempts=2)
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    worker = Worker(store, config, tmp_path, lambda run_id: f"v-for-{run_id}", poll_s=0.1)
    yield store, worker, tmp_path
    worker.stop(timeout_s=10)


def submit(store: JobStore, script: str, kind: str = "train") -> str:
    job, _ = store.create(kind=kind, request={}, params={},
                          command=[sys.executable, "-c", textwrap.dedent(script)], max_attempts=2)
    return job["id"]


def finished(store: JobStore, job_id: str) -> Callable[[], bool]:
    return lambda: store.get(job_id)["state"] in ("succeeded", "failed", "cancelled")


PROGRESS = """
import json, os
path = os.environ["DEEPFAKE_KEDRO_PROGRESS_FILE"]
open(path, "w").write(json.dumps({"stage": "validation", "node": "n", "nodes_done": 3,
    "nodes_total": 3, "mlflow_run_id": "run123",
    "system": os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"]}))
"""


def test_success_records_progress_run_and_registered_version(setup):
    store, worker, _ = setup
    job_id = submit(store, PROGRESS)
    worker.start()
    wait_for(finished(store, job_id))
    job = store.get(job_id)
    assert job["state"] == "succeeded", job["error"]
    assert (job["stage"], job["nodes_done"], job["nodes_total"]) == ("validation", 3, 3)
    assert job["mlflow_run_id"] == "run123" and job["registered_version"] == "v-for-run123"
    progress = json.loads(Path(job["log_path"]).with_name("progress.json").read_text())
    assert progress["system"] == "true"


def test_transient_failure_is_retried_then_succeeds(setup):
    store, worker, tmp_path = setup
    marker = tmp_path / "first-attempt-done"
    job_id = submit(store, f"""
        import pathlib, sys
        marker = pathlib.Path({str(marker)!r})
        if not marker.exists():
            marker.touch()
            print("sqlite3.OperationalError: database is locked")
            sys.exit(1)
        {PROGRESS.strip().replace(chr(10), chr(10) + ' ' * 8)}
    """)
    worker.start()
    wait_for(finished(store, job_id))
    job = store.get(job_id)
    assert job["state"] == "succeeded" and job["attempts"] == 2


def test_a_code_error_fails_at_once_with_the_log_tail(setup):
    store, worker, _ = setup
    job_id = submit(store, "raise ValueError('bad manifest column: label')")
    worker.start()
    wait_for(finished(store, job_id))
    job = store.get(job_id)
    assert job["state"] == "failed" and job["attempts"] == 1
    assert "bad manifest column: label" in job["error"] and "exited with 1" in job["error"]


def test_cancel_stops_the_running_process(setup):
    store, worker, _ = setup
    job_id = submit(store, "import time; time.sleep(120)")
    worker.start()
    wait_for(lambda: store.get(job_id)["pid"] is not None)
    pid = store.get(job_id)["pid"]
    store.request_cancel(job_id)
    wait_for(finished(store, job_id))
    assert store.get(job_id)["state"] == "cancelled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_stopping_the_worker_requeues_its_running_job_without_using_an_attempt(setup):
    store, worker, _ = setup
    job_id = submit(store, "import time; time.sleep(120)")
    worker.start()
    wait_for(lambda: store.get(job_id)["pid"] is not None)
    worker.stop(timeout_s=10)
    job = store.get(job_id)
    assert job["state"] == "queued" and job["attempts"] == 0 and "API stopped" in job["error"]


def test_jobs_of_a_dead_api_process_are_requeued_then_failed(setup):
    store, worker, _ = setup
    job_id = submit(store, "pass")
    store.claim_next("deadhost:1")
    # Another host, so only the heartbeat can tell: make it stale.
    worker.config = worker.config.model_copy(update={"heartbeat_stale_s": 1e-6})
    assert worker.recover_orphans() == [job_id]
    job = store.get(job_id)
    assert job["state"] == "queued" and "stopped unexpectedly" in job["error"]
    store.claim_next("deadhost:1")
    store.claim_next("deadhost:1")
    assert store.get(job_id)["attempts"] == 2
    assert worker.recover_orphans() == [job_id]
    assert store.get(job_id)["state"] == "failed"


def test_a_live_api_process_keeps_its_jobs(setup):
    store, worker, _ = setup
    job_id = submit(store, "pass")
    store.claim_next("otherhost:1")
    assert worker.recover_orphans() == []  # fresh heartbeat, other host: not ours to judge
    assert store.get(job_id)["state"] == "running"


def test_scalar_params_go_on_the_command_line_and_lists_into_a_run_config():
    command = kedro_run_command(
        "__default__",
        {"raw_manifest_path": "/d/m.csv", "ensemble_training": {"epochs": 2, "resume": False,
                                                                 "learning_rate": 0.01}},
        env=None,
    )
    assert command[1:] == ["-m", "kedro", "run", "--params",
                           "raw_manifest_path=/d/m.csv,ensemble_training.epochs=2,"
                           "ensemble_training.resume=false,ensemble_training.learning_rate=0.01"]
    listed = kedro_run_command("validation", {"ensemble_training": {"branches": ["a", "b"]}}, "s3")
    assert listed[4:] == ["--pipelines", "validation", "--env", "s3", "--config",
                          RUN_CONFIG_PLACEHOLDER]
    commas = kedro_run_command("__default__", {"raw_manifest_path": "/d/a,b/m.csv"}, None)
    assert commas[-2:] == ["--config", RUN_CONFIG_PLACEHOLDER]


def test_run_config_file_carries_nested_params(setup):
    store, worker, _ = setup
    params = {"raw_manifest_path": "/d/a,b/m.csv", "ensemble_training": {"branches": ["a", "b"]}}
    command = kedro_run_command("__default__", params, None)
    job, _ = store.create(kind="train", request={}, params=params, max_attempts=1,
                          command=[sys.executable, "-c", "import sys; print(open(sys.argv[-1]).read())",
                                   *command[-2:]])
    worker.start()
    wait_for(finished(store, job["id"]))
    log = Path(store.get(job["id"])["log_path"]).read_text()
    assert "- a" in log and "/d/a,b/m.csv" in log and "run:" in log


class _Node:
    def __init__(self, name: str) -> None:
        self.name, self.namespace = name, None


class _Pipeline:
    nodes = [_Node("a_node"), _Node("b_node")]


def test_progress_hook_writes_only_when_asked(tmp_path, monkeypatch):
    hooks = ProgressHooks()
    monkeypatch.delenv(PROGRESS_FILE_ENV, raising=False)
    hooks.before_pipeline_run({"pipeline_names": ["__default__"]}, _Pipeline())
    hooks.before_node_run(_Node("a_node"))
    assert not list(tmp_path.iterdir())

    path = tmp_path / "progress.json"
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(path))
    hooks.before_pipeline_run({"pipeline_names": ["__default__"]}, _Pipeline())
    hooks.before_node_run(_Node("a_node"))
    hooks.after_node_run(_Node("a_node"), {"fusion_checkpoint": {"epoch": 4}})
    state = json.loads(path.read_text())
    assert (state["node"], state["nodes_done"], state["nodes_total"], state["epoch"]) == (
        "a_node", 1, 2, 4)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", state["updated_at"])  # project format
    hooks.on_node_error(ValueError("boom"), _Node("b_node"))
    assert "node b_node failed: ValueError: boom" in json.loads(path.read_text())["error"]
