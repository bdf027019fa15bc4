"""kedro schedule's jobs: triggers, misfire settings, catch-up of a missed run, state."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from deepfake_kedro.retraining.config import ScheduleConfig
from deepfake_kedro.retraining.schedule import (
    CHECK_JOB,
    CLEANUP_JOB,
    ScheduleState,
    build_scheduler,
    describe_jobs,
    missed_run,
)

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday


def _noop() -> None:
    pass


@pytest.fixture
def started():
    schedulers = []

    def start(scheduler):
        scheduler.start(paused=True)  # computes next run times; runs nothing
        schedulers.append(scheduler)
        return {job.id: job for job in scheduler.get_jobs()}

    yield start
    for scheduler in schedulers:
        scheduler.shutdown(wait=False)


def test_jobs_have_cron_triggers_and_misfire_settings(started, tmp_path):
    config = ScheduleConfig(misfire_grace_time_s=600)
    scheduler = build_scheduler(
        config,
        _noop,
        _noop,
        state=ScheduleState(tmp_path / "s.json"),
        scheduler_factory=BackgroundScheduler,
    )
    jobs = started(scheduler)
    assert set(jobs) == {CHECK_JOB, CLEANUP_JOB}
    for job in jobs.values():
        assert isinstance(job.trigger, CronTrigger)
        assert job.misfire_grace_time == 600 and job.coalesce and job.max_instances == 1
    check, cleanup = jobs[CHECK_JOB], jobs[CLEANUP_JOB]
    assert (check.next_run_time.hour, check.next_run_time.minute) == (3, 0)
    assert cleanup.next_run_time.weekday() == 6 and cleanup.next_run_time.hour == 4  # Sunday
    assert {record["id"] for record in describe_jobs(scheduler)} == {CHECK_JOB, CLEANUP_JOB}


def test_run_missed_while_down_is_caught_up_once_at_start(started, tmp_path):
    state = ScheduleState(tmp_path / "state.json")
    state.record(CHECK_JOB, NOW - timedelta(days=1, hours=2))  # ran yesterday 10:00
    state.record(CLEANUP_JOB, NOW - timedelta(days=1))  # Tuesday: no Sunday run missed since
    scheduler = build_scheduler(
        ScheduleConfig(misfire_grace_time_s=12 * 3600),
        _noop,
        _noop,
        state=state,
        now=NOW,
        scheduler_factory=BackgroundScheduler,
    )
    jobs = started(scheduler)
    assert jobs[CHECK_JOB].next_run_time == NOW  # today's 03:00 was missed: run now
    assert jobs[CLEANUP_JOB].next_run_time > NOW + timedelta(days=3)  # next Sunday


def test_missed_run_respects_the_grace_time_and_the_first_start():
    trigger = CronTrigger.from_crontab("0 3 * * *", timezone=UTC)
    last = NOW - timedelta(days=1, hours=2)
    assert missed_run(trigger, last, NOW, timedelta(hours=12)) == NOW.replace(hour=3)
    assert missed_run(trigger, last, NOW, timedelta(hours=1)) is None  # 9 h late: too late
    assert missed_run(trigger, None, NOW, timedelta(hours=12)) is None  # first start
    assert missed_run(trigger, NOW - timedelta(hours=1), NOW, timedelta(hours=12)) is None


def test_job_records_its_run_and_survives_a_failure(tmp_path):
    state = ScheduleState(tmp_path / "state.json")

    def boom() -> None:
        raise RuntimeError("kedro retrain exited with code 1")

    scheduler = build_scheduler(
        ScheduleConfig(), boom, _noop, state=state, scheduler_factory=BackgroundScheduler
    )
    job = next(job for job in scheduler.get_jobs() if job.id == CHECK_JOB)
    job.func()  # logged, not raised: the schedule goes on
    assert CHECK_JOB in state.load() and CLEANUP_JOB not in state.load()


def test_corrupt_state_file_names_the_fix(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        ScheduleState(path).load()


def test_state_is_written_in_the_project_format_and_reads_old_offsets(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({CHECK_JOB: "2026-03-03T03:00:00+00:00"}))  # earlier versions
    state = ScheduleState(path)
    assert state.load() == {CHECK_JOB: NOW.replace(day=3, hour=3)}
    state.record(CLEANUP_JOB, NOW)
    assert json.loads(path.read_text()) == {
        CHECK_JOB: "2026-03-03T03:00:00Z",
        CLEANUP_JOB: "2026-03-04T12:00:00Z",
    }
    assert state.load() == {CHECK_JOB: NOW.replace(day=3, hour=3), CLEANUP_JOB: NOW}
