"""``kedro retrain`` (check, and train only when needed) and ``kedro schedule`` (run it daily).

Exit codes of ``kedro retrain``: 0 when it finished (trained or nothing to do) and when another
writer holds the project lock (it says who and starts nothing); 1 when the check or the
training run failed (the message names which); 2 for a usage error (click).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from deepfake_kedro import project as bootstrap
from deepfake_kedro.commands._project import (
    ENV_OPTION,
    params_option,
    project_context,
    project_root,
)
from deepfake_kedro.mappings import deep_merge

logger = logging.getLogger(__name__)

CHECK_PIPELINE = "retraining"
TRAINING_PIPELINE = "__default__"
DECISION_DATASET = "retraining_decision"
#: Exit code when another writer holds the project lock (documented in docs/retraining.md).
EXIT_LOCKED = 0

PARAMS_OPTION = params_option(
    "Parameter overrides for both runs, as for kedro run: key1=value1,key2.sub=value2."
)


def _retraining_config(params: dict[str, Any]) -> Any:
    from deepfake_kedro.retraining.config import RetrainingConfig

    try:
        return RetrainingConfig.model_validate(params.get("retraining") or {})
    except ValueError as err:
        raise click.ClickException(
            f"invalid parameters under 'retraining' (conf/base/parameters_retraining.yml): {err}"
        ) from err


def _close_mlflow_runs() -> None:
    """End the runs a session left active, so the next session opens its own run.

    kedro-mlflow re-enters the pipeline's run before every node (``nested: true`` in
    mlflow.yml stacks it) and ends it once, so without this the training session would log
    into the check's run.
    """
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


def _describe(decision: dict[str, Any]) -> str:
    lines = [f"retrain: {decision['answer']}"]
    lines += [f"  - {reason}" for reason in decision["reasons"]]
    for name, check in decision["checks"].items():
        verdict = (
            "TRIGGERED" if check["triggered"] else ("ok" if check["evaluated"] else "not evaluated")
        )
        value = "" if check.get("value") is None else f" value={check['value']:.4g}"
        limit = "" if check.get("threshold") is None else f" threshold={check['threshold']:.4g}"
        lines.append(f"  [{verdict}] {name}:{value}{limit}")
    return "\n".join(lines)


def run_retraining(
    project: Path, env: str | None, params: dict[str, Any], *, force: bool, dry_run: bool
) -> dict[str, Any]:
    """Run the checks and, when they say so (or ``force``), the training pipeline.

    One KedroSession per run. The caller holds the project lock; the sessions' own lock hook
    passes under it (the lock is re-entrant for its holder). Ctrl-C or SIGTERM ends the
    runs' MLflow runs as KILLED.

    Returns:
        The decision, with ``trained`` (bool) and the run times added.

    Raises:
        click.ClickException: naming the run that failed.
    """
    check_params = deep_merge(params, {"retraining": {"force": True}}) if force else params
    started = time.perf_counter()
    with bootstrap.session(project, env, check_params) as session:
        context = session.load_context()
        try:
            session.run(pipeline_names=[CHECK_PIPELINE])
        except Exception as err:
            raise click.ClickException(
                f"the retraining check (kedro run --pipelines {CHECK_PIPELINE}) failed: "
                f"{type(err).__name__}: {err}"
            ) from err
        decision = context.catalog.load(DECISION_DATASET)
    _close_mlflow_runs()
    decision["check_seconds"] = round(time.perf_counter() - started, 2)
    decision["trained"] = False
    click.echo(_describe(decision))
    if not decision["retrain"]:
        click.echo(f"Nothing to do: the champion stays (check took {decision['check_seconds']} s).")
        return decision
    if dry_run:
        click.echo("--dry-run: not training.")
        return decision
    click.echo(f"Training: kedro run --pipelines {TRAINING_PIPELINE} ...")
    started = time.perf_counter()
    with bootstrap.session(project, env, params) as session:
        try:
            session.run(pipeline_names=[TRAINING_PIPELINE])
        except Exception as err:
            _close_mlflow_runs()
            raise click.ClickException(
                f"the training run (kedro run, pipeline {TRAINING_PIPELINE}) failed after the "
                f"check decided to retrain: {type(err).__name__}: {err}. Fix the cause and run "
                "kedro retrain again (the data changed, so it retrains; or use --force)"
            ) from err
        # Not on Ctrl-C/SIGTERM: `interruptible` ends those runs as KILLED, not FINISHED.
        _close_mlflow_runs()
    decision["trained"] = True
    decision["train_seconds"] = round(time.perf_counter() - started, 2)
    click.echo(f"Training finished in {decision['train_seconds']} s.")
    return decision


@click.command(name="retrain")
@ENV_OPTION
@PARAMS_OPTION
@click.option("--force", is_flag=True, help="Retrain whatever the checks say.")
@click.option("--dry-run", is_flag=True, help="Only run the checks and print the decision.")
def retrain(env: str | None, params: dict[str, Any], force: bool, dry_run: bool) -> None:
    """Check whether the champion needs retraining; if so, train (ingestion to registration).

    Holds the project lock for the whole run: another writer meanwhile (a second kedro
    retrain, a kedro run that trains, kedro models deploy) is refused; if another writer
    holds it, this one says who and exits 0.
    """
    from deepfake_kedro.interrupts import interruptible
    from deepfake_kedro.project_lock import LockHeldError, LockSettingError, ProjectLock

    project = project_root()
    # The lock comes first: nothing (not even the MLflow store's creation) runs twice at once.
    try:
        lock = ProjectLock("kedro retrain", project=project).acquire()
    except LockSettingError as err:
        raise click.ClickException(str(err)) from err
    except LockHeldError as err:
        click.echo(f"{err}. Exiting.")
        sys.exit(EXIT_LOCKED)
    try:
        _retraining_config(bootstrap.parameters(project, env, params))
        with interruptible("kedro retrain"):
            run_retraining(project, env, params, force=force, dry_run=dry_run)
    finally:
        lock.release()


def _check_job(project: Path, env: str | None) -> None:
    """Run ``kedro retrain`` in a fresh process (its own memory, the same lock)."""
    command = [sys.executable, "-m", "kedro", "retrain", *(["--env", env] if env else [])]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).splitlines()[-40:]:
        logger.info("kedro retrain | %s", line)
    if result.returncode != 0:
        raise RuntimeError(f"kedro retrain exited with code {result.returncode}")


def _cleanup_job(project: Path, env: str | None) -> None:
    """Delete old model versions as ``kedro models cleanup`` does (aliased ones are kept),
    holding the project lock (a writer holding it fails the job; the next week's runs)."""
    from deepfake_kedro.commands.models import _registry
    from deepfake_kedro.project_lock import project_lock
    from deepfake_kedro.registry.operations import cleanup

    with project_lock("kedro schedule (weekly_model_cleanup)", project=project):
        client, config = _registry(env)
        deleted = cleanup(client, config)
    logger.info(
        "cleanup deleted %d version(s) of '%s': %s", len(deleted), config.model_name, deleted
    )


@click.command(name="schedule")
@ENV_OPTION
@click.option("--list-jobs", is_flag=True, help="Print the jobs and their next runs, then exit.")
def schedule(env: str | None, list_jobs: bool) -> None:
    """Run the daily retraining check and the weekly model cleanup (retraining.schedule).

    A run missed while the scheduler was down is caught up once at start-up (within
    misfire_grace_time_s). Stop with Ctrl-C.
    """
    from apscheduler.schedulers.background import BackgroundScheduler

    from deepfake_kedro.retraining.schedule import ScheduleState, build_scheduler, describe_jobs

    project = project_root()
    with project_context(env) as context:
        config = _retraining_config(context.params).schedule
    handler = None
    if config.log_file:
        log_path = project / config.log_file
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("apscheduler", "deepfake_kedro"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
    factory = BackgroundScheduler if list_jobs else None
    scheduler = build_scheduler(
        config,
        lambda: _check_job(project, env),
        lambda: _cleanup_job(project, env),
        state=ScheduleState(project / config.state_file),
        **({"scheduler_factory": factory} if factory else {}),
    )
    if list_jobs:
        scheduler.start(paused=True)
        click.echo(json.dumps(describe_jobs(scheduler), indent=2, default=str))
        scheduler.shutdown(wait=False)
        return
    click.echo(
        f"Scheduling: retraining check '{config.check_cron}', cleanup '{config.cleanup_cron}' "
        f"({config.timezone}); log: {config.log_file or 'console'}. Ctrl-C to stop."
    )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        click.echo("Scheduler stopped.")
    finally:
        if handler is not None:
            handler.close()
