"""Run queued jobs: each one is its own ``python -m kedro run`` process in the project folder.

One process per run means one ``KedroSession`` per run (sessions are not thread-safe) and a
crash, a leak or a cancel never touches the API. ``max_concurrent_jobs`` threads each claim a
job from the store, start its process, follow the progress file the job's
:class:`~deepfake_kedro.api.progress.ProgressHooks` writes, and record the outcome.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from deepfake_kedro.api.config import ENV_TOKENS, ApiConfig
from deepfake_kedro.api.jobs import CANCELLED, FAILED, SUCCEEDED, JobStore
from deepfake_kedro.api.progress import PROGRESS_FILE_ENV

logger = logging.getLogger(__name__)

RUN_CONFIG_PLACEHOLDER = "{run_config}"
# Failures worth another attempt: the store or the network, not the code or the data.
TRANSIENT_PATTERNS = re.compile(
    r"database is locked|ConnectionError|Connection (reset|refused|aborted)|"
    r"Temporary failure in name resolution|EndpointConnectionError|ReadTimeout|"
    r"ConnectTimeout|TimeoutError|SlowDown|ServiceUnavailable|Too Many Requests|"
    r"CUDA error: out of memory|BrokenPipeError",
)
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@+-]+$")
_PROGRESS_FIELDS = ("stage", "node", "nodes_done", "nodes_total", "epoch", "mlflow_run_id")


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def kedro_run_command(pipeline: str, params: Mapping[str, Any], env: str | None) -> list[str]:
    """The ``kedro run`` command line of a job.

    Scalar parameters go through ``--params key=value,...``. Kedro splits that option on
    commas, so when a value is a list or holds a character outside ``[A-Za-z0-9_./:@+-]`` the
    parameters go into a per-job run config file instead (``--config``; the worker writes it
    next to the job's log, in place of ``{run_config}``).
    """
    command = [sys.executable, "-m", "kedro", "run"]
    if pipeline != "__default__":
        command += ["--pipelines", pipeline]
    if env:
        command += ["--env", env]
    flat = flatten_params(params)
    if not flat:
        return command
    if all(_plain(value) for value in flat.values()):
        command += ["--params", ",".join(f"{k}={_format(v)}" for k, v in flat.items())]
    else:
        command += ["--config", RUN_CONFIG_PLACEHOLDER]
    return command


def _plain(value: Any) -> bool:
    if isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and bool(_PLAIN_VALUE.match(value))


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


class Worker:
    """Threads that execute the store's queued jobs.

    Args:
        store: The job store.
        config: API settings (concurrency, retries, cancel grace, orphan policy).
        project: The Kedro project folder the runs execute in.
        find_registered_version: ``run_id -> version or None`` (the MLflow registry lookup).
    """

    def __init__(
        self,
        store: JobStore,
        config: ApiConfig,
        project: Path,
        find_registered_version: Any = None,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.config = config
        self.project = project
        self.jobs_dir = config.resolved_jobs_dir(project) / "jobs"
        self.find_registered_version = find_registered_version or (lambda run_id: None)
        self.poll_s = poll_s
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Recover orphaned jobs, then start ``max_concurrent_jobs`` threads."""
        self.recover_orphans(startup=True)
        for index in range(self.config.max_concurrent_jobs):
            thread = threading.Thread(target=self._loop, name=f"api-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the runs in progress and put their jobs back in the queue for the next start."""
        self._stop.set()
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))

    def recover_orphans(self, startup: bool = False) -> list[str]:
        """Requeue (or fail) jobs left ``running`` by an API process that is gone.

        A job is orphaned when the API process that claimed it ran on this host and is dead
        (or is this process at start-up), or when its heartbeat is older than
        ``heartbeat_stale_s``. A leftover ``kedro run`` of the job is killed first.

        Returns:
            The ids of the jobs recovered.
        """
        recovered = []
        host = socket.gethostname()
        for job in self.store.running():
            with self._lock:
                if job["id"] in self._processes:
                    continue
            owner_host, _, owner_pid = (job["worker"] or ":").rpartition(":")
            dead_owner = owner_host == host and (
                (startup and job["worker"] == self.id) or not _pid_alive(owner_pid)
            )
            heartbeat = job["heartbeat_at"] or job["updated_at"]
            stale = (datetime.now(UTC) - heartbeat).total_seconds() > self.config.heartbeat_stale_s
            if not (dead_owner or stale):
                continue
            if job["pid"]:
                _kill_leftover(job["pid"])
            why = f"the API process {job['worker']} running it stopped unexpectedly"
            if self.config.orphaned_jobs == "requeue" and job["attempts"] < job["max_attempts"]:
                self.store.requeue(job["id"], delay_s=0, error=f"re-queued: {why}")
                logger.warning("Job %s re-queued: %s", job["id"], why)
            else:
                self.store.finish(job["id"], FAILED, error=f"{why} (attempt {job['attempts']})")
                logger.warning("Job %s marked failed: %s", job["id"], why)
            recovered.append(job["id"])
        return recovered

    # ------------------------------------------------------------------ execution
    def _loop(self) -> None:
        last_check = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_check > self.config.heartbeat_stale_s / 2:
                last_check = time.monotonic()
                self._guard(self.recover_orphans)
            job = self._guard(lambda: self.store.claim_next(self.id))
            if job is None:
                self._stop.wait(self.poll_s)
                continue
            try:
                self._run(job)
            except Exception as error:  # never lose a job to a worker bug: record it
                logger.exception("Worker error on job %s", job["id"])
                self.store.finish(job["id"], FAILED, error=f"worker error: {error!r}")

    @staticmethod
    def _guard(call: Any) -> Any:
        try:
            return call()
        except Exception:  # a database hiccup must not kill the worker thread
            logger.exception("Job store operation failed; retrying later")
            return None

    def _run(self, job: dict[str, Any]) -> None:
        job_id, attempt = job["id"], job["attempts"]
        folder = self.jobs_dir / job_id
        folder.mkdir(parents=True, exist_ok=True)
        progress_file = folder / "progress.json"
        progress_file.unlink(missing_ok=True)
        log_path = folder / f"attempt-{attempt}.log"
        command = list(job["command"])
        if RUN_CONFIG_PLACEHOLDER in command:
            run_config = folder / "run_config.yml"
            run_config.write_text(yaml.safe_dump({"run": {"params": job["params"]}}), "utf-8")
            command[command.index(RUN_CONFIG_PLACEHOLDER)] = str(run_config)
        env = {
            **os.environ,
            PROGRESS_FILE_ENV: str(progress_file),
            "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "true",
            "DO_NOT_TRACK": "1",
            "KEDRO_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop(ENV_TOKENS, None)  # the run needs no API credentials
        logger.info("Job %s attempt %d: %s", job_id, attempt, " ".join(command))
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=self.project,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: cancel kills its children too
            )
        with self._lock:
            self._processes[job_id] = process
        try:
            self.store.update_running(job_id, pid=process.pid, log_path=str(log_path))
            returncode, cancelled = self._follow(job_id, process, progress_file)
        finally:
            with self._lock:
                self._processes.pop(job_id, None)
        progress = _read_progress(progress_file)
        self.store.update_running(job_id, **_progress_values(progress))
        self._record_outcome(job, returncode, cancelled, progress, log_path)

    def _follow(
        self, job_id: str, process: subprocess.Popen, progress_file: Path
    ) -> tuple[int, bool]:
        """Wait for the run, recording progress and honouring cancel; ``(returncode, cancelled)``."""
        cancelled_at: float | None = None
        while True:
            try:
                return process.wait(timeout=self.poll_s), cancelled_at is not None
            except subprocess.TimeoutExpired:
                pass
            values = _progress_values(_read_progress(progress_file))
            still_running = self._guard(lambda v=values: self.store.update_running(job_id, **v))
            cancel = still_running is False or bool(
                (self._guard(lambda: self.store.get(job_id)) or {}).get("cancel_requested")
            )
            if cancel and cancelled_at is None:
                logger.info("Cancelling job %s (process group %d)", job_id, process.pid)
                _signal_group(process.pid, signal.SIGTERM)
                cancelled_at = time.monotonic()
            elif cancelled_at is not None and time.monotonic() - cancelled_at > self.config.cancel_grace_s:
                _signal_group(process.pid, signal.SIGKILL)

    def _record_outcome(
        self,
        job: dict[str, Any],
        returncode: int,
        cancelled: bool,
        progress: dict[str, Any],
        log_path: Path,
    ) -> None:
        job_id, attempt = job["id"], job["attempts"]
        if cancelled:
            self.store.finish(job_id, CANCELLED, error="cancelled while running")
            logger.info("Job %s cancelled", job_id)
            return
        if self._stop.is_set() and returncode != 0:
            self.store.requeue(
                job_id,
                delay_s=0,
                error="re-queued: the API stopped while this job ran",
                count_attempt=False,
            )
            logger.info("Job %s re-queued for the next start of the API", job_id)
            return
        if returncode == 0:
            run_id = progress.get("mlflow_run_id") or job.get("mlflow_run_id")
            version = job["request"].get("version") if job["kind"] == "validate" else None
            if run_id and version is None:
                version = self.find_registered_version(run_id)
            self.store.finish(job_id, SUCCEEDED, registered_version=version, error=None)
            logger.info("Job %s succeeded (run %s, version %s)", job_id, run_id, version)
            return
        log_tail = _tail(log_path)
        error = progress.get("error") or _last_lines(log_tail)
        transient = returncode < 0 or bool(TRANSIENT_PATTERNS.search(log_tail))
        if transient and attempt < job["max_attempts"]:
            delay = self.config.retry_backoff_s * 2 ** (attempt - 1)
            self.store.requeue(
                job_id,
                delay_s=delay,
                error=f"attempt {attempt} failed transiently (exit {returncode}), retry in "
                f"{delay:g} s: {error}",
            )
            logger.warning("Job %s attempt %d failed transiently; retry in %g s", job_id, attempt, delay)
            return
        self.store.finish(
            job_id, FAILED, error=f"kedro run exited with {returncode} (log: {log_path}): {error}"
        )
        logger.warning("Job %s failed: exit %d", job_id, returncode)


def _read_progress(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _progress_values(progress: dict[str, Any]) -> dict[str, Any]:
    return {key: progress[key] for key in _PROGRESS_FIELDS if progress.get(key) is not None}


def _tail(path: Path, size: int = 20000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _last_lines(text: str, n: int = 12) -> str:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-n:])[-4000:] or "no output"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pid_alive(pid: str) -> bool:
    import psutil

    return pid.isdigit() and psutil.pid_exists(int(pid))


def _kill_leftover(pid: int) -> None:
    """Kill a job's ``kedro run`` left by a dead API, if that pid is still such a process."""
    import psutil

    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return
    if "kedro" in cmdline and " run" in cmdline:
        logger.warning("Killing leftover run %d of an orphaned job: %s", pid, cmdline)
        _signal_group(pid, signal.SIGKILL)
