"""The SQLAlchemy job store: idempotency, claiming, paging, cancel, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_kedro.api.jobs import IdempotencyConflict, JobNotFound, JobStore


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")


def create(store: JobStore, key: str | None = None, request: dict | None = None) -> tuple[dict, bool]:
    return store.create(
        kind="train",
        request=request or {"dataset_path": "m.csv"},
        params={"raw_manifest_path": "m.csv"},
        command=["kedro", "run", "--params", "x={job_id}"],
        max_attempts=2,
        idempotency_key=key,
    )


def test_a_new_job_is_queued_with_its_command(store):
    job, created = create(store)
    assert created and job["state"] == "queued" and job["attempts"] == 0
    assert job["command"][-1] == f"x={job['id']}"
    assert store.get(job["id"])["created_at"].tzinfo is not None


def test_the_same_idempotency_key_returns_the_same_job(store):
    first, created = create(store, key="abc")
    again, created_again = create(store, key="abc")
    assert created and not created_again and again["id"] == first["id"]
    with pytest.raises(IdempotencyConflict, match="different request"):
        create(store, key="abc", request={"dataset_path": "other.csv"})


def test_claim_takes_the_oldest_due_job_once(store):
    first, _ = create(store)
    second, _ = create(store)
    claimed = store.claim_next("w1")
    assert claimed["id"] == first["id"] and claimed["state"] == "running" and claimed["attempts"] == 1
    assert store.claim_next("w2")["id"] == second["id"]
    assert store.claim_next("w3") is None


def test_requeue_with_backoff_is_not_claimed_before_it_is_due(store):
    job, _ = create(store)
    store.claim_next("w")
    store.requeue(job["id"], delay_s=3600, error="transient")
    assert store.get(job["id"])["state"] == "queued"
    assert store.claim_next("w") is None


def test_list_pages_and_filters_newest_first(store):
    ids = [create(store)[0]["id"] for _ in range(5)]
    store.claim_next("w")  # the oldest is now running
    page, total = store.list(limit=2, offset=1)
    assert total == 5 and [j["id"] for j in page] == ids[::-1][1:3]
    queued, total_queued = store.list(state="queued")
    assert total_queued == 4 and ids[0] not in {j["id"] for j in queued}


def test_cancel_a_queued_job_at_once_and_flag_a_running_one(store):
    queued, _ = create(store)
    running, _ = create(store)
    store.claim_next("w")  # claims `queued` (the older)
    store.claim_next("w")
    fresh, _ = create(store)
    assert store.request_cancel(fresh["id"])["state"] == "cancelled"
    flagged = store.request_cancel(running["id"])
    assert flagged["state"] == "running" and flagged["cancel_requested"]
    with pytest.raises(JobNotFound):
        store.request_cancel("nope")


def test_jobs_survive_a_new_store_on_the_same_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    job, _ = create(JobStore(url), key="k")
    reopened = JobStore(url)
    assert reopened.get(job["id"])["idempotency_key"] == "k"
    assert reopened.list()[1] == 1
