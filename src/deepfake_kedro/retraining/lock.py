"""The lock that keeps two retrainings from running at once.

An OS file lock (``filelock`` -> ``fcntl.flock`` on Linux/macOS, ``LockFileEx`` on Windows) on
a file under ``data/``: the kernel releases it when the holding process exits or dies, so a
killed run never leaves a stale lock behind. The holder's pid and start time are written next
to it (``<lock>.owner``) only to make the "already running" message useful.

The lock is local to one machine (or a shared file system that honours ``flock``); runs on
several machines need one scheduler (Airflow's ``max_active_runs=1``) instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout


class LockHeldError(RuntimeError):
    """Another process holds the retraining lock."""


@contextmanager
def retraining_lock(path: str | Path) -> Iterator[Path]:
    """Hold the retraining lock at ``path`` for the ``with`` block, or fail at once.

    Args:
        path: Lock file; its folder is created.

    Yields:
        The lock file path.

    Raises:
        LockHeldError: if another process holds it (message names its pid and start time).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = path.with_name(path.name + ".owner")
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout as err:
        raise LockHeldError(
            f"another retraining holds the lock {path} ({_describe(owner)}); not starting a "
            "second one"
        ) from err
    try:
        owner.write_text(
            json.dumps(
                {"pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
            ),
            encoding="utf-8",
        )
        yield path
    finally:
        with suppress(OSError):
            owner.unlink()
        lock.release()


def _describe(owner: Path) -> str:
    try:
        record = json.loads(owner.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "holder unknown"
    return f"pid {record.get('pid')}, since {record.get('since')}"
