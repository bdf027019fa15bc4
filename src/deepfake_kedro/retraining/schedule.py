"""The jobs of ``kedro schedule``: the daily retraining check and the weekly registry cleanup.

APScheduler 3 cron jobs with ``misfire_grace_time`` (a run delayed by up to that long still
runs), ``coalesce`` (several missed runs run once) and ``max_instances=1``. A run missed while
the scheduler was not running at all is caught up once at start-up: each job's last run is
kept in a small JSON state file, and a job whose previous fire time after that last run lies
within the grace time is started immediately.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from deepfake_kedro.retraining.config import ScheduleConfig
from deepfake_kedro.retraining.crontab import cron_trigger
from deepfake_kedro.values import iso

logger = logging.getLogger(__name__)

CHECK_JOB = "daily_retraining_check"
CLEANUP_JOB = "weekly_model_cleanup"


class ScheduleState:
    """Last run time of each job, in a JSON file (written atomically)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, datetime]:
        """``{job_id: last run (UTC)}``; empty when the file does not exist yet.

        Reads project timestamps (``2026-03-04T03:00:00Z``) and the ``+00:00`` offsets that
        state files written by earlier versions hold.
        """
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise ValueError(
                f"{self.path} is not valid JSON ({err}); delete it (it only remembers the last "
                "run of each scheduled job)"
            ) from err
        return {job: datetime.fromisoformat(value) for job, value in raw.items()}

    def record(self, job_id: str, when: datetime) -> None:
        """Remember that ``job_id`` ran at ``when``."""
        state = {k: iso(v) for k, v in self.load().items()}
        state[job_id] = iso(when)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)


def missed_run(
    trigger: CronTrigger, last_run: datetime | None, now: datetime, grace: timedelta
) -> datetime | None:
    """The fire time missed since ``last_run`` that is still within ``grace`` of ``now``.

    Returns ``None`` on the first start (no last run: nothing was missed) or when the latest
    missed fire time is too old.
    """
    if last_run is None:
        return None
    latest = None
    fire = trigger.get_next_fire_time(None, last_run + timedelta(seconds=1))
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    if latest is None or now - latest > grace:
        return None
    return latest


def build_scheduler(
    config: ScheduleConfig,
    check: Callable[[], Any],
    cleanup: Callable[[], Any],
    *,
    state: ScheduleState | None = None,
    now: datetime | None = None,
    scheduler_factory: Callable[..., BaseScheduler] = BlockingScheduler,
) -> BaseScheduler:
    """A scheduler (not started) with the check and cleanup jobs.

    Args:
        config: Crontabs, time zone, misfire settings.
        check: The retraining check (``kedro retrain``).
        cleanup: The registry cleanup.
        state: Last runs; each job records its runs there and a missed run is caught up once.
        now: Current time (tests); default now.
        scheduler_factory: Scheduler class (``BlockingScheduler`` for ``kedro schedule``).
    """
    zone = ZoneInfo(config.timezone)
    now = now or datetime.now(zone)
    last = state.load() if state is not None else {}
    scheduler = scheduler_factory(timezone=zone)
    grace = timedelta(seconds=config.misfire_grace_time_s)
    for job_id, crontab, func, name in (
        (CHECK_JOB, config.check_cron, check, "retraining check (kedro retrain)"),
        (CLEANUP_JOB, config.cleanup_cron, cleanup, "model version cleanup"),
    ):
        trigger = cron_trigger(crontab, zone)
        missed = missed_run(trigger, last.get(job_id), now, grace)
        options: dict[str, Any] = {}
        if missed is not None:
            logger.warning(
                "%s missed its run at %s while the scheduler was down: running it now",
                name,
                missed.isoformat(),
            )
            options["next_run_time"] = now
        scheduler.add_job(
            _recorded(func, job_id, state),
            trigger,
            id=job_id,
            name=name,
            misfire_grace_time=config.misfire_grace_time_s,
            coalesce=config.coalesce,
            max_instances=1,
            replace_existing=True,
            **options,
        )
    return scheduler


def describe_jobs(scheduler: BaseScheduler) -> list[Mapping[str, Any]]:
    """One record per job: id, name, trigger, next run and misfire settings."""
    return [
        {
            "id": job.id,
            "name": job.name,
            "trigger": str(job.trigger),
            "next_run_time": getattr(job, "next_run_time", None),
            "misfire_grace_time": job.misfire_grace_time,
            "coalesce": job.coalesce,
            "max_instances": job.max_instances,
        }
        for job in scheduler.get_jobs()
    ]


def _recorded(
    func: Callable[[], Any], job_id: str, state: ScheduleState | None
) -> Callable[[], None]:
    def run() -> None:
        started = datetime.now(UTC)
        logger.info("job %s started", job_id)
        try:
            func()
        except Exception:
            # Logged, not raised: one failed run must not stop the schedule.
            logger.exception("job %s failed", job_id)
        else:
            logger.info(
                "job %s finished in %.1f s", job_id, (datetime.now(UTC) - started).total_seconds()
            )
        finally:
            if state is not None:
                state.record(job_id, started)

    run.__name__ = f"run_{job_id}"
    return run
