"""Run queued jobs: each one is its own ``python -m kedro run`` process in the project folder.

One process per run means one ``KedroSession`` per run (sessions are not thread-safe) and a
crash, a leak or a cancel never touches the API. ``max_concurrent_jobs`` threads each claim a
job from the store, start its process, follow the progress file the job's
:class:`~deepfake_kedro.api.progress.ProgressHooks` writes, and record the outcome.

A run outlives a crash of the API (it has its own session). The next API process settles
such a job from the run itself (:mod:`deepfake_kedro.api.recovery`): a live run is adopted
and followed like its own, a finished one is recorded as succeeded, only a run that stopped
half-way is queued again. A run whose process was killed (cancel, stop, crash) is ended in
MLflow as ``KILLED`` (``FAILED`` when it exited with an error), never left ``RUNNING``.
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
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from deepfake_kedro.api.config import ENV_TOKENS, ApiConfig
from deepfake_kedro.api.jobs import CANCELLED, FAILED, SUCCEEDED, JobStore
from deepfake_kedro.api.progress import PROGRESS_FILE_ENV
from deepfake_kedro.api.recovery import Verdict, find_process, judge_run
from deepfake_kedro.api.tracking import FAILED as RUN_FAILED
from deepfake_kedro.api.tracking import KILLED, NoTracking, RunTracker

logger = logging.getLogger(__name__)

RUN_CONFIG_PLACEHOLDER = "{run_config}"
# Failures worth another attempt: the store or the network, not the code or the data.
TRANSIENT_PATTERNS = re.compile(
    r"database is locked|ConnectionError|Connection (reset|refused|aborted)|"
    r"Temporary failure in name resolution|EndpointConnectionError|ReadTimeout|"
    r"ConnectTimeout|TimeoutError|SlowDown|ServiceUnavailable|Too Many Requests|"
    r"CUDA error: out of memory|BrokenPipeError|"
    # another writer (kedro retrain, a kedro run) holds the project lock: try again later
    r"the project is locked by",
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
        runs: What MLflow holds of a job's run
            (:class:`~deepfake_kedro.api.tracking.MlflowRuns`); ``None`` knows no run.
        poll_s: Seconds between two looks at a running job and at the queue.
    """

    def __init__(
        self,
        store: JobStore,
        config: ApiConfig,
        project: Path,
        runs: RunTracker | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.config = config
        self.project = project
        self.jobs_dir = config.resolved_jobs_dir(project) / "jobs"
        self.runs: RunTracker = runs or NoTracking()
        self.poll_s = poll_s
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._processes: dict[str, int] = {}  # job id -> pid of the run this worker follows
        self._adopted: deque[dict[str, Any]] = deque()  # adopted runs waiting for a thread
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
            pids = list(self._processes.values())
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))

    def recover_orphans(self, startup: bool = False) -> list[str]:
        """Settle the jobs left ``running`` by an API process that is gone, from their runs.

        A job is orphaned when the API process that claimed it ran on this host and is dead
        (or is this process at start-up), or when its heartbeat is older than
        ``heartbeat_stale_s``. Then, from the run itself (:mod:`deepfake_kedro.api.recovery`):

        - its ``kedro run`` is still alive on this host: adopted, followed like a run of this
          worker (never a second run of the same job);
        - it finished: ``succeeded`` with the version it registered, never run again;
        - it failed: recorded like any failure (a transient one is retried);
        - it stopped half-way: its MLflow run is ended ``KILLED`` and the job re-queued (or
          failed, with ``orphaned_jobs: fail`` or no attempt left).

        Returns:
            The ids of the jobs recovered.
        """
        recovered = []
        host = socket.gethostname()
        for job in self.store.running():
            with self._lock:
                ours = job["id"] in self._processes
                ours = ours or any(a["id"] == job["id"] for a in self._adopted)
            if ours:
                continue
            owner_host, _, owner_pid = (job["worker"] or ":").rpartition(":")
            dead_owner = owner_host == host and (
                (startup and job["worker"] == self.id) or not _pid_alive(owner_pid)
            )
            heartbeat = job["heartbeat_at"] or job["updated_at"]
            stale = (datetime.now(UTC) - heartbeat).total_seconds() > self.config.heartbeat_stale_s
            if not (dead_owner or stale):
                continue
            if self._recover(job, same_host=owner_host == host):
                recovered.append(job["id"])
        return recovered

    def _recover(self, job: dict[str, Any], same_host: bool) -> bool:
        job_id = job["id"]
        why = f"the API process {job['worker']} running it stopped unexpectedly"
        progress_file = self.jobs_dir / job_id / "progress.json"
        progress = _read_progress(progress_file)
        found = find_process(job["pid"] or progress.get("pid"), job_id) if same_host else None
        if found is not None:
            process, _ = found
            adopted = self.store.adopt(
                job_id, from_worker=job["worker"], to_worker=self.id, pid=process.pid
            )
            if not adopted:
                return False  # another worker got there first
            with self._lock:
                self._adopted.append({**job, "pid": process.pid, "worker": self.id})
            logger.warning(
                "Job %s: %s, but its kedro run (pid %d) still runs; following it",
                job_id, why, process.pid,
            )
            return True
        verdict = judge_run(job, progress, self.runs)
        logger.warning("Job %s: %s; its run ended unwatched: %s", job_id, why, verdict.evidence)
        if verdict.outcome != "unfinished":
            log_path = Path(job["log_path"] or _attempt_log(progress_file, job["attempts"]))
            self.store.update_running(job_id, **_progress_values(progress))
            self._record_outcome(job, None, False, progress, log_path, verdict=verdict)
            return True
        self._end_run(verdict.run_id, KILLED)
        if self.config.orphaned_jobs == "requeue" and job["attempts"] < job["max_attempts"]:
            self.store.requeue(job_id, delay_s=0, error=f"re-queued: {why} ({verdict.evidence})")
            logger.warning("Job %s re-queued: %s", job_id, why)
        else:
            self.store.finish(
                job_id, FAILED, error=f"{why} (attempt {job['attempts']}; {verdict.evidence})"
            )
            logger.warning("Job %s marked failed: %s", job_id, why)
        return True

    # ------------------------------------------------------------------ execution
    def _loop(self) -> None:
        last_check = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_check > self.config.heartbeat_stale_s / 2:
                last_check = time.monotonic()
                self._guard(self.recover_orphans)
            with self._lock:
                adopted = self._adopted.popleft() if self._adopted else None
                if adopted is not None:
                    self._processes[adopted["id"]] = adopted["pid"]
            if adopted is not None:
                self._execute(adopted, self._follow_adopted)
                continue
            job = self._guard(lambda: self.store.claim_next(self.id))
            if job is None:
                self._stop.wait(self.poll_s)
                continue
            self._execute(job, self._run)

    def _execute(self, job: dict[str, Any], run: Any) -> None:
        try:
            run(job)
        except Exception as error:  # never lose a job to a worker bug: record it
            logger.exception("Worker error on job %s", job["id"])
            self.store.finish(job["id"], FAILED, error=f"worker error: {error!r}")
        finally:
            with self._lock:
                self._processes.pop(job["id"], None)

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
            popen = subprocess.Popen(
                command,
                cwd=self.project,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: cancel kills its children too
            )
        with self._lock:
            self._processes[job_id] = popen.pid
        self.store.update_running(job_id, pid=popen.pid, log_path=str(log_path))
        self._watch(job, _Process(popen.pid, popen), progress_file, log_path)

    def _follow_adopted(self, job: dict[str, Any]) -> None:
        """Follow the still-running ``kedro run`` of a job a crashed API process started."""
        found = find_process(job["pid"], job["id"])
        progress_file = found[1] if found else self.jobs_dir / job["id"] / "progress.json"
        log_path = Path(job["log_path"] or _attempt_log(progress_file, job["attempts"]))
        self._watch(job, _Process(job["pid"]), progress_file, log_path)

    def _watch(
        self, job: dict[str, Any], process: _Process, progress_file: Path, log_path: Path
    ) -> None:
        returncode, cancelled = self._follow(job["id"], process, progress_file)
        progress = _read_progress(progress_file)
        self.store.update_running(job["id"], **_progress_values(progress))
        self._record_outcome(job, returncode, cancelled, progress, log_path)

    def _follow(
        self, job_id: str, process: _Process, progress_file: Path
    ) -> tuple[int | None, bool]:
        """Wait for the run, recording progress and honouring cancel; ``(returncode, cancelled)``."""
        cancelled_at: float | None = None
        while True:
            ended, returncode = process.wait(self.poll_s)
            if ended:
                return returncode, cancelled_at is not None
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
        returncode: int | None,
        cancelled: bool,
        progress: dict[str, Any],
        log_path: Path,
        verdict: Verdict | None = None,
    ) -> None:
        """Record how a run ended. ``returncode`` ``None``: a run this process did not start,
        whose ``verdict`` (:func:`~deepfake_kedro.api.recovery.judge_run`) tells instead."""
        job_id, attempt = job["id"], job["attempts"]
        run_id = progress.get("mlflow_run_id") or job.get("mlflow_run_id")
        if cancelled:
            self._end_run(run_id, KILLED)
            self.store.finish(job_id, CANCELLED, error="cancelled while running")
            logger.info("Job %s cancelled", job_id)
            return
        exit_text = f"exited with {returncode}"
        if returncode is None:
            verdict = verdict or judge_run(job, progress, self.runs)
            run_id = verdict.run_id or run_id
            returncode = {"finished": 0, "failed": 1}.get(verdict.outcome, -signal.SIGKILL)
            exit_text = f"ended while no API watched it ({verdict.evidence})"
        if self._stop.is_set() and returncode != 0:
            self._end_run(run_id, KILLED)
            self.store.requeue(
                job_id,
                delay_s=0,
                error="re-queued: the API stopped while this job ran",
                count_attempt=False,
            )
            logger.info("Job %s re-queued for the next start of the API", job_id)
            return
        if returncode == 0:
            version = job["request"].get("version") if job["kind"] == "validate" else None
            if run_id and version is None:
                version = self.runs.registered_version(run_id)
            self.store.finish(
                job_id, SUCCEEDED, registered_version=version, error=None, mlflow_run_id=run_id
            )
            logger.info("Job %s succeeded (run %s, version %s)", job_id, run_id, version)
            return
        self._end_run(run_id, KILLED if returncode < 0 else RUN_FAILED)
        log_tail = _tail(log_path)
        error = progress.get("error") or _last_lines(log_tail)
        transient = returncode < 0 or bool(TRANSIENT_PATTERNS.search(log_tail))
        if transient and attempt < job["max_attempts"]:
            delay = self.config.retry_backoff_s * 2 ** (attempt - 1)
            self.store.requeue(
                job_id,
                delay_s=delay,
                error=f"attempt {attempt} failed transiently ({exit_text}), retry in "
                f"{delay:g} s: {error}",
            )
            logger.warning("Job %s attempt %d failed transiently; retry in %g s", job_id, attempt, delay)
            return
        self.store.finish(
            job_id, FAILED, error=f"kedro run {exit_text} (log: {log_path}): {error}"
        )
        logger.warning("Job %s failed: %s", job_id, exit_text)

    def _end_run(self, run_id: str | None, status: str) -> None:
        """End the job's MLflow run as ``status`` if its process left it ``RUNNING``."""
        if run_id:
            self._guard(lambda: self.runs.end(run_id, status))


def _attempt_log(progress_file: Path, attempt: int) -> Path:
    return progress_file.with_name(f"attempt-{attempt}.log")


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


class _Process:
    """A job's ``kedro run``: one this worker started (``popen``) or one it adopted."""

    def __init__(self, pid: int, popen: subprocess.Popen | None = None) -> None:
        import psutil

        self.pid = pid
        self._popen = popen
        self._adopted: Any = None
        if popen is None:
            try:
                self._adopted = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass

    def wait(self, timeout: float) -> tuple[bool, int | None]:
        """``(ended, exit code)`` after at most ``timeout`` s. An adopted run is not this
        process's child: its exit code is unknown (``None``); its run tells how it went."""
        import psutil

        if self._popen is not None:
            try:
                return True, self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False, None
        if self._adopted is None:
            return True, None
        try:
            if self._adopted.status() == psutil.STATUS_ZOMBIE:  # dead; its parent does not reap
                return True, None
            return True, self._adopted.wait(timeout=timeout)
        except psutil.TimeoutExpired:
            return False, None
        except psutil.NoSuchProcess:
            return True, None
