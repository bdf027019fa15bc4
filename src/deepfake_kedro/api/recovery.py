"""What became of a job's run while no API process watched it.

An API that crashes leaves its jobs ``running`` and their ``kedro run`` processes alive (each
runs in its own session). Before a restarted API re-queues such a job it asks the run itself:

- :func:`find_process`: is the job's ``kedro run`` still alive? Then the worker follows it
  (adopts it) instead of starting a second one.
- :func:`judge_run`: when the process is gone, did its run finish (the progress file says
  ``finished``, a model version carries its run id, or MLflow holds it ``FINISHED`` with its
  closing tag), fail, or stop half-way?
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deepfake_kedro.api.progress import PROGRESS_FILE_ENV
from deepfake_kedro.api.tracking import FAILED, FINISHED, RunTracker

logger = logging.getLogger(__name__)

Outcome = Literal["finished", "failed", "unfinished"]


@dataclass(frozen=True)
class Verdict:
    """How a run that ended unwatched went.

    Attributes:
        outcome: ``finished`` (every node and closing hook ran), ``failed`` (it recorded an
            error) or ``unfinished`` (it stopped half-way: killed, or the machine went down).
        run_id: Its MLflow run, if known.
        version: The version a finished training run registered (a validation job: the
            version it validated).
        evidence: What the outcome was read from, for the log and the job's error.
    """

    outcome: Outcome
    run_id: str | None
    version: str | None
    evidence: str


def judge_run(job: dict[str, Any], progress: dict[str, Any], runs: RunTracker) -> Verdict:
    """The outcome of ``job``'s last run, from its progress file and the MLflow store.

    A registered version with the run's id counts as finished even if the progress file
    missed the end: re-running the job would register a second version for it.

    Args:
        job: The job-store record.
        progress: The run's progress file (:class:`~deepfake_kedro.api.progress.ProgressHooks`),
            ``{}`` when there is none.
        runs: The MLflow questions (:class:`~deepfake_kedro.api.tracking.MlflowRuns`).
    """
    run_id = progress.get("mlflow_run_id") or job.get("mlflow_run_id")
    validated = job["request"].get("version") if job["kind"] == "validate" else None
    registered = runs.registered_version(run_id) if run_id and job["kind"] == "train" else None
    version = validated or registered
    if progress.get("status") == "finished":
        done, total = progress.get("nodes_done"), progress.get("nodes_total")
        evidence = f"its progress file says finished ({done}/{total} nodes)"
        return Verdict("finished", run_id, version, evidence)
    if registered:
        evidence = f"its run {run_id} registered version {registered}"
        return Verdict("finished", run_id, version, evidence)
    record = runs.run(run_id) if run_id else None
    if record is not None and record.status == FINISHED and record.outcome_recorded:
        return Verdict("finished", run_id, version, f"its MLflow run {run_id} is FINISHED")
    if progress.get("status") == "failed":
        evidence = progress.get("error") or "its progress file says failed"
        return Verdict("failed", run_id, None, evidence)
    if record is not None and record.status == FAILED:
        return Verdict("failed", run_id, None, f"its MLflow run {run_id} is FAILED")
    return Verdict("unfinished", run_id, None, "it stopped before its last node")


def find_process(pid: int | None, job_id: str) -> tuple[Any, Path] | None:
    """The live ``kedro run`` of job ``job_id`` at ``pid`` and its progress file, else ``None``.

    The process is the job's only if its environment names the job's progress file (the
    worker sets it): a pid reused by another program after the run ended does not count,
    nor does a zombie.
    """
    import psutil

    if not pid:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        progress_file = process.environ().get(PROGRESS_FILE_ENV, "")
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        logger.warning("Process %d may be job %s's run; its environment is unreadable", pid, job_id)
        return None
    path = Path(progress_file)
    if path.name != "progress.json" or path.parent.name != job_id:
        return None
    return process, path
