"""The worker on real subprocesses: success, transient retry, failure, cancel, orphans, stop.

The jobs run small ``python -c`` scripts instead of ``kedro run`` (the end-to-end tests in
test_server.py run the real pipelines); the worker executes whatever command a job holds.
MLflow is a fake with the same questions (run status, registered version, ending a run).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
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
from deepfake_kedro.api.tracking import RunRecord
from deepfake_kedro.api.worker import RUN_CONFIG_PLACEHOLDER, Worker, kedro_run_command


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until ``predicate`` holds (the deadline only bounds a hang, it is not the check)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


class FakeRuns:
    """MLflow as the worker sees it: run statuses, registered versions, the runs it ended."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.versions: dict[str, str] = {"run123": "v-for-run123"}
        self.ended: list[tuple[str, str]] = []

    def registered_version(self, run_id: str) -> str | None:
        return self.versions.get(run_id)

    def run(self, run_id: str) -> RunRecord | None:
        return RunRecord(self.status[run_id], False) if run_id in self.status else None

    def end(self, run_id: str, status: str) -> None:
        if self.status.get(run_id) == "RUNNING":
            self.status[run_id] = status
            self.ended.append((run_id, status))


@pytest.fixture
def runs() -> FakeRuns:
    return FakeRuns()


@pytest.fixture
def setup(tmp_path: Path, runs: FakeRuns):
    config = ApiConfig(jobs_dir=str(tmp_path / "api"), retry_backoff_s=0, cancel_grace_s=2,
                       max_attempts=2)
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    worker = Worker(store, config, tmp_path, runs, poll_s=0.1)
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


# ---------------------------------------------------------------------- recovery from the run
NEVER_RUN = "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()"


def orphan_job(store: JobStore, worker: Worker, tmp_path: Path, pid: int | None = None) -> str:
    """A job claimed by an API process of this host that is dead now, its run started.

    Its command would leave a marker file if the worker ever ran it again.
    """
    job, _ = store.create(kind="train", request={}, params={}, max_attempts=2,
                          command=[sys.executable, "-c", NEVER_RUN, str(tmp_path / "ran-again")])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.claim_next(f"{socket.gethostname()}:{gone.pid}")
    if pid is not None:
        store.update_running(job["id"], pid=pid)
    (worker.jobs_dir / job["id"]).mkdir(parents=True)
    return job["id"]


def write_progress(worker: Worker, job_id: str, status: str, run_id: str = "run-o", **extra) -> None:
    done = 19 if status == "finished" else 7
    (worker.jobs_dir / job_id / "progress.json").write_text(json.dumps(
        {"status": status, "nodes_done": done, "nodes_total": 19, "stage": "registration",
         "mlflow_run_id": run_id, **extra}))


def spawn_orphan(script: str, progress_file: Path) -> int:
    """Start ``script`` as the worker starts a run, then lose its parent (the API is killed)."""
    launcher = textwrap.dedent(f"""
        import os, subprocess, sys
        env = {{**os.environ, {PROGRESS_FILE_ENV!r}: {str(progress_file)!r}}}
        child = subprocess.Popen([sys.executable, "-c", {textwrap.dedent(script)!r}], env=env,
                                 start_new_session=True, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(child.pid)
    """)
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True,
                         check=True, timeout=60)
    return int(out.stdout)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_run_that_finished_while_no_api_watched_succeeds_and_is_not_run_again(setup, runs):
    store, worker, tmp_path = setup
    job_id = orphan_job(store, worker, tmp_path)
    write_progress(worker, job_id, "finished", run_id="run-done")
    runs.status["run-done"], runs.versions["run-done"] = "FINISHED", "7"
    worker.start()
    job = store.get(job_id)
    assert job["state"] == "succeeded" and job["attempts"] == 1 and job["error"] is None
    assert job["registered_version"] == "7" and job["mlflow_run_id"] == "run-done"
    assert (job["nodes_done"], job["nodes_total"]) == (19, 19)
    time.sleep(1)
    assert not (tmp_path / "ran-again").exists() and runs.ended == []


def test_a_registered_version_counts_as_finished_even_without_the_progress_file(setup, runs):
    store, worker, tmp_path = setup
    job_id = orphan_job(store, worker, tmp_path)
    store.update_running(job_id, mlflow_run_id="run-reg")
    runs.status["run-reg"], runs.versions["run-reg"] = "FINISHED", "3"
    assert worker.recover_orphans(startup=True) == [job_id]
    assert store.get(job_id)["state"] == "succeeded"
    assert store.get(job_id)["registered_version"] == "3"


def test_a_run_that_stopped_half_way_is_requeued_and_ended_killed_in_mlflow(setup, runs):
    store, worker, tmp_path = setup
    job_id = orphan_job(store, worker, tmp_path)
    write_progress(worker, job_id, "running", run_id="run-half")
    runs.status["run-half"] = "RUNNING"
    assert worker.recover_orphans(startup=True) == [job_id]
    job = store.get(job_id)
    assert job["state"] == "queued" and "stopped before its last node" in job["error"]
    assert runs.ended == [("run-half", "KILLED")]


def test_a_run_that_failed_while_no_api_watched_fails_with_its_error(setup, runs):
    store, worker, tmp_path = setup
    job_id = orphan_job(store, worker, tmp_path)
    write_progress(worker, job_id, "failed", run_id="run-bad",
                   error="node split_node failed: ValueError: no fake images")
    runs.status["run-bad"] = "FAILED"
    worker.recover_orphans(startup=True)
    job = store.get(job_id)
    assert job["state"] == "failed" and "no fake images" in job["error"]
    assert not (tmp_path / "ran-again").exists()


def test_a_pid_now_used_by_another_program_is_not_adopted(setup, runs):
    store, worker, tmp_path = setup
    job_id = orphan_job(store, worker, tmp_path, pid=os.getpid())  # alive, but not the run
    write_progress(worker, job_id, "running")
    worker.recover_orphans(startup=True)
    assert store.get(job_id)["state"] == "queued"


ORPHAN_RUN = """
import json, os, time
path = os.environ["DEEPFAKE_KEDRO_PROGRESS_FILE"]
def report(status, done):
    open(path + ".tmp", "w").write(json.dumps({"status": status, "nodes_done": done,
        "nodes_total": 3, "mlflow_run_id": "run-adopted", "pid": os.getpid()}))
    os.replace(path + ".tmp", path)
report("running", 1)
time.sleep(SECONDS)
report("finished", 3)
"""


def test_a_run_still_alive_is_adopted_and_followed_not_started_again(setup, runs):
    store, worker, tmp_path = setup
    job_id = orphan_job(store, worker, tmp_path)
    runs.versions["run-adopted"] = "5"
    pid = spawn_orphan(ORPHAN_RUN.replace("SECONDS", "4"), worker.jobs_dir / job_id / "progress.json")
    store.update_running(job_id, pid=pid)
    worker.start()
    job = store.get(job_id)
    assert job["state"] == "running" and job["worker"] == worker.id and job["pid"] == pid
    wait_for(finished(store, job_id))
    job = store.get(job_id)
    assert job["state"] == "succeeded", job["error"]
    assert job["attempts"] == 1 and job["registered_version"] == "5"
    assert job["nodes_done"] == job["nodes_total"] == 3
    assert not (tmp_path / "ran-again").exists()


def test_cancelling_an_adopted_run_kills_it_and_its_mlflow_run(setup, runs):
    store, worker, tmp_path = setup
    job_id = orphan_job(store, worker, tmp_path)
    runs.status["run-adopted"] = "RUNNING"
    pid = spawn_orphan(ORPHAN_RUN.replace("SECONDS", "120"), worker.jobs_dir / job_id / "progress.json")
    store.update_running(job_id, pid=pid)  # the recorded pid; the progress file holds it too
    worker.start()
    wait_for(lambda: store.get(job_id)["worker"] == worker.id)
    store.request_cancel(job_id)
    wait_for(finished(store, job_id))
    assert store.get(job_id)["state"] == "cancelled"
    wait_for(lambda: gone(pid), timeout=10)
    assert runs.ended == [("run-adopted", "KILLED")]


def test_a_cancelled_run_is_ended_killed_in_mlflow(setup, runs):
    store, worker, _ = setup
    runs.status["run-c"] = "RUNNING"
    job_id = submit(store, """
        import json, os, time
        open(os.environ["DEEPFAKE_KEDRO_PROGRESS_FILE"], "w").write(json.dumps({"mlflow_run_id": "run-c"}))
        time.sleep(120)
    """)
    worker.start()
    wait_for(lambda: store.get(job_id)["mlflow_run_id"] == "run-c")
    store.request_cancel(job_id)
    wait_for(finished(store, job_id))
    assert store.get(job_id)["state"] == "cancelled"
    assert runs.ended == [("run-c", "KILLED")]


def test_a_run_that_exits_with_an_error_is_not_left_running_in_mlflow(setup, runs):
    store, worker, _ = setup
    runs.status["run-e"] = "RUNNING"  # as a run killed before kedro-mlflow could end it
    job_id = submit(store, """
        import json, os
        open(os.environ["DEEPFAKE_KEDRO_PROGRESS_FILE"], "w").write(json.dumps({"mlflow_run_id": "run-e"}))
        raise SystemExit("bad column")
    """)
    worker.start()
    wait_for(finished(store, job_id))
    assert store.get(job_id)["state"] == "failed" and runs.ended == [("run-e", "FAILED")]


def test_finished_is_written_only_after_registration_and_every_other_closing_hook(
    tmp_path, monkeypatch
):
    from kedro.framework.hooks import hook_impl
    from kedro.framework.hooks.manager import _create_hook_manager

    path = tmp_path / "progress.json"
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(path))
    seen: list[str] = []

    class Registration:  # like RegistrationHooks: trylast, registered before ProgressHooks
        fail = False

        @hook_impl(trylast=True)
        def after_pipeline_run(self) -> None:
            seen.append(json.loads(path.read_text())["status"])
            if self.fail:
                raise RuntimeError("registry unreachable")

    registration = Registration()
    manager = _create_hook_manager()
    manager.register(registration)
    manager.register(ProgressHooks())
    call = {"run_params": {"pipeline_names": ["__default__"]}, "pipeline": _Pipeline(),
            "catalog": None}
    manager.hook.before_pipeline_run(**call)
    assert json.loads(path.read_text())["pid"] == os.getpid()
    manager.hook.after_pipeline_run(run_result={}, **call)
    assert seen == ["running"] and json.loads(path.read_text())["status"] == "finished"

    registration.fail = True
    manager.hook.before_pipeline_run(**call)
    with pytest.raises(RuntimeError, match="registry unreachable"):
        manager.hook.after_pipeline_run(run_result={}, **call)
    state = json.loads(path.read_text())
    assert state["status"] == "failed" and "registry unreachable" in state["error"]


def test_a_job_refused_by_the_project_lock_is_retried_later():
    """A job started while `kedro retrain` (or a kedro run) holds the project lock is a
    transient failure: the worker retries it with backoff instead of failing it."""
    from deepfake_kedro.api.worker import TRANSIENT_PATTERNS
    from deepfake_kedro.project_lock import ProjectLock

    message = ProjectLock("kedro run", project=".")._refusal({"pid": 1, "command": "kedro retrain"})
    assert TRANSIENT_PATTERNS.search(f"Error: {message}")
    assert not TRANSIENT_PATTERNS.search("Error: the 'val' split is empty")
