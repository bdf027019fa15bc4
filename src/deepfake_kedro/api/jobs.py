"""The job store: one row per training or validation job, in any SQLAlchemy database.

States: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``; a transient
failure or an orphaned run that stopped half-way goes back to ``queued`` (with ``not_before``
for the backoff); an orphaned run still alive is adopted by another worker, still ``running``.
Every transition is one conditional ``UPDATE``, so two workers (or two API processes on one
Postgres) never claim the same job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


class IdempotencyConflict(ValueError):
    """An ``Idempotency-Key`` reused for a different request."""


class JobNotFound(KeyError):
    """No job with that id."""


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One job and everything the API reports about it."""

    __tablename__ = "api_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # train | validate
    state: Mapped[str] = mapped_column(String(16), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # Kedro runtime params of the run
    command: Mapped[list[str]] = mapped_column(JSON)
    stage: Mapped[str | None] = mapped_column(String(200))
    node: Mapped[str | None] = mapped_column(String(300))
    nodes_done: Mapped[int | None] = mapped_column(Integer)
    nodes_total: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[int | None] = mapped_column(Integer)
    epochs_total: Mapped[int | None] = mapped_column(Integer)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    registered_version: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200))  # host:pid of the API running it
    pid: Mapped[int | None] = mapped_column(Integer)  # the kedro process
    log_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def as_dict(self) -> dict[str, Any]:
        """Column values, datetimes as timezone-aware UTC (SQLite stores them naive)."""
        out = {}
        for column in self.__table__.columns:
            value = getattr(self, column.name)
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            out[column.name] = value
        return out


class JobStore:
    """Jobs in the database at ``url`` (created on first use)."""

    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            # API threads and worker threads share the file; wait for locks instead of failing.
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.url = url
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # ------------------------------------------------------------------ create and read
    def create(
        self,
        *,
        kind: str,
        request: dict[str, Any],
        params: dict[str, Any],
        command: list[str],
        max_attempts: int,
        epochs_total: int | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue a job; ``(job, created)``. A known idempotency key returns its job instead.

        Raises:
            IdempotencyConflict: The key belongs to a job of another kind or request.
        """
        if idempotency_key is not None:
            existing = self._by_key(idempotency_key, kind, request)
            if existing is not None:
                return existing, False
        job_id = uuid.uuid4().hex
        stamp = now()
        job = Job(
            id=job_id,
            kind=kind,
            state=QUEUED,
            idempotency_key=idempotency_key,
            request=request,
            params=params,
            command=[part.replace("{job_id}", job_id) for part in command],
            attempts=0,
            max_attempts=max_attempts,
            epochs_total=epochs_total,
            cancel_requested=False,
            created_at=stamp,
            updated_at=stamp,
        )
        try:
            with self.session() as session:
                session.add(job)
        except IntegrityError:  # the same key submitted concurrently: the first one wins
            existing = self._by_key(idempotency_key or "", kind, request)
            if existing is None:
                raise
            return existing, False
        return self.get(job_id), True

    def _by_key(self, key: str, kind: str, request: dict[str, Any]) -> dict[str, Any] | None:
        with self.session() as session:
            job = session.scalar(select(Job).where(Job.idempotency_key == key))
            if job is None:
                return None
            if job.kind != kind or job.request != request:
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was used for job {job.id} with a different "
                    "request; use a new key for a new job"
                )
            return job.as_dict()

    def get(self, job_id: str) -> dict[str, Any]:
        """The job as a dict. Raises JobNotFound."""
        with self.session() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise JobNotFound(job_id)
            return job.as_dict()

    def list(
        self, *, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; ``(page, total matching)``."""
        query = select(Job)
        count = select(func.count()).select_from(Job)
        if state is not None:
            query, count = query.where(Job.state == state), count.where(Job.state == state)
        with self.session() as session:
            total = session.scalar(count) or 0
            rows = session.scalars(
                query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
            ).all()
            return [row.as_dict() for row in rows], total

    # ------------------------------------------------------------------ transitions
    def claim_next(self, worker: str) -> dict[str, Any] | None:
        """Move the oldest due queued job to ``running`` for ``worker``; None if none is due."""
        stamp = now()
        with self.session() as session:
            candidates = session.scalars(
                select(Job.id)
                .where(Job.state == QUEUED)
                .where((Job.not_before.is_(None)) | (Job.not_before <= stamp))
                .order_by(Job.created_at)
                .limit(5)
            ).all()
        for job_id in candidates:
            with self.session() as session:
                claimed = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == QUEUED)
                    .values(
                        state=RUNNING,
                        worker=worker,
                        pid=None,
                        attempts=Job.attempts + 1,
                        started_at=stamp,
                        heartbeat_at=stamp,
                        updated_at=stamp,
                        not_before=None,
                        error=None,
                    )
                ).rowcount
            if claimed == 1:
                return self.get(job_id)
        return None

    def update_running(self, job_id: str, **values: Any) -> bool:
        """Record progress / pid / heartbeat of a running job; False if it is not running."""
        stamp = now()
        with self.session() as session:
            return (
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == RUNNING)
                    .values(heartbeat_at=stamp, updated_at=stamp, **values)
                ).rowcount
                == 1
            )

    def adopt(self, job_id: str, *, from_worker: str | None, to_worker: str, pid: int) -> bool:
        """Hand a running job whose API process is gone to ``to_worker``, which follows its
        still-running process ``pid``; False if another worker took it first."""
        stamp = now()
        owner = Job.worker.is_(None) if from_worker is None else Job.worker == from_worker
        with self.session() as session:
            return (
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == RUNNING, owner)
                    .values(worker=to_worker, pid=pid, heartbeat_at=stamp, updated_at=stamp)
                ).rowcount
                == 1
            )

    def finish(self, job_id: str, state: str, **values: Any) -> None:
        """Move a running job to a terminal state."""
        stamp = now()
        with self.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == RUNNING)
                .values(state=state, finished_at=stamp, updated_at=stamp, pid=None, **values)
            )

    def requeue(self, job_id: str, *, delay_s: float, error: str | None, count_attempt: bool = True) -> None:
        """Put a running job back in the queue, due after ``delay_s``."""
        stamp = now()
        values: dict[str, Any] = {
            "state": QUEUED,
            "not_before": stamp + timedelta(seconds=delay_s),
            "error": error,
            "pid": None,
            "worker": None,
            "updated_at": stamp,
        }
        if not count_attempt:
            values["attempts"] = Job.attempts - 1
        with self.session() as session:
            session.execute(update(Job).where(Job.id == job_id, Job.state == RUNNING).values(**values))

    def request_cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job now, or flag a running one for its worker to stop.

        Returns the job after the change. Raises JobNotFound; a finished job is returned
        unchanged (the caller reports the conflict).
        """
        stamp = now()
        with self.session() as session:
            if session.get(Job, job_id) is None:
                raise JobNotFound(job_id)
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == QUEUED)
                .values(
                    state=CANCELLED,
                    cancel_requested=True,
                    finished_at=stamp,
                    updated_at=stamp,
                    error="cancelled before it started",
                )
            )
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == RUNNING)
                .values(cancel_requested=True, updated_at=stamp)
            )
        return self.get(job_id)

    def running(self) -> list[dict[str, Any]]:
        with self.session() as session:
            return [j.as_dict() for j in session.scalars(select(Job).where(Job.state == RUNNING))]


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the worker's writes
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
