"""The project lock: one writer of ``data/`` and the model registry at a time.

Every writer takes it: a ``kedro run`` of a pipeline that writes the training data, the
checkpoint or the verdict, or registers (:class:`deepfake_kedro.hooks.ProjectLockHooks`), hence
every API job (a ``kedro run`` process); ``kedro retrain`` for its whole run; ``kedro models
deploy|rollback|cleanup`` and the schedule's cleanup job. A second writer waits up to
``DEEPFAKE_KEDRO_LOCK_WAIT_S`` seconds (default 0: it fails at once) and then raises
:class:`LockHeldError`, whose one-line message names the holder (pid, command, since when) and
what to do.

An OS file lock (``filelock`` -> ``flock(2)`` on Linux/macOS, ``LockFileEx`` on Windows) on
:data:`LOCK_FILE` under the project: the kernel releases it when the holder exits or is
killed, so there is never a stale lock to delete. The holder's record (pid, command, start
time, host, token) is written next to it (``<lock>.owner``) for the message only; a record
left by a killed holder is overwritten by the next one.

Re-entrant for its holder: the holder puts its token in ``DEEPFAKE_KEDRO_LOCK_HOLDER`` (its
environment), so the Kedro sessions it runs in the same process (``kedro retrain``) and any
child process it starts (a ``kedro run`` subprocess) find the lock held under the token they
carry and pass without locking again.

The lock is local to one machine (or a shared file system that honours ``flock``); writers on
several machines need one scheduler (Airflow's ``max_active_runs=1``) instead.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from filelock import FileLock, Timeout

from deepfake_kedro.values import utc_now

#: The lock file, relative to the project root: the one place its path is set.
LOCK_FILE = Path("data/09_scheduler/project.lock")
#: The holder's token, inherited by its own sessions and child processes (re-entrancy).
HOLDER_ENV = "DEEPFAKE_KEDRO_LOCK_HOLDER"
#: Seconds a second writer waits for the lock before it fails (default 0: at once).
WAIT_ENV = "DEEPFAKE_KEDRO_LOCK_WAIT_S"


class LockHeldError(RuntimeError):
    """Another writer holds the project lock.

    Attributes:
        holder: The holder's record (``pid``, ``command``, ``since``, ``host``), or ``None``
            when it could not be read.
    """

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class LockSettingError(ValueError):
    """``DEEPFAKE_KEDRO_LOCK_WAIT_S`` is not a number of seconds."""


def lock_path(project: str | Path | None = None) -> Path:
    """The lock file of ``project`` (default: :func:`deepfake_kedro.project.project_root`)."""
    if project is None:
        from deepfake_kedro.project import project_root

        project = project_root()
    return Path(project).resolve() / LOCK_FILE


def wait_seconds() -> float:
    """How long a second writer waits for the lock: ``$DEEPFAKE_KEDRO_LOCK_WAIT_S``, else 0.

    Raises:
        LockSettingError: if the variable is set to something other than a number >= 0.
    """
    text = os.environ.get(WAIT_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise LockSettingError(
            f"{WAIT_ENV}={text!r} must be a number of seconds >= 0 (0: fail at once)"
        )
    return value


class ProjectLock:
    """One writer's hold on the project lock: :meth:`acquire`, then :meth:`release`.

    Also a context manager. When the lock is already held under the token this process
    carries (its own holder, or the parent that started it), :meth:`acquire` passes without
    locking again and :attr:`nested` is true; :meth:`release` then does nothing.

    Args:
        command: What is taking the lock, for the holder record and the refusal message
            (``"kedro retrain"``, ``"kedro models deploy 3"``).
        project: The project root (default: :func:`deepfake_kedro.project.project_root`).
        wait_s: Seconds to wait for another holder (default: :func:`wait_seconds`).
    """

    def __init__(
        self, command: str, *, project: str | Path | None = None, wait_s: float | None = None
    ) -> None:
        self.command = command
        self.path = lock_path(project)
        self.owner_path = self.path.with_name(self.path.name + ".owner")
        self.wait_s = wait_seconds() if wait_s is None else float(wait_s)
        self.nested = False
        self._lock: FileLock | None = None
        self._token: str | None = None
        self._previous_env: str | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (not counting a nested pass)."""
        return self._lock is not None

    def acquire(self) -> ProjectLock:
        """Take the lock, or pass if this process's holder token already holds it.

        Returns:
            ``self``.

        Raises:
            LockHeldError: if another writer still holds it after :attr:`wait_s` seconds.
        """
        if self.held or self.nested:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), timeout=0, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = self.holder()
            carried = os.environ.get(HOLDER_ENV)
            if carried and holder is not None and holder.get("token") == carried:
                self.nested = True
                return self
            try:
                if self.wait_s <= 0:
                    raise
                lock.acquire(timeout=self.wait_s)
            except Timeout as err:
                holder = self.holder() or holder
                raise LockHeldError(self._refusal(holder), _public(holder)) from err
        self._lock = lock
        self._hold()
        return self

    def release(self) -> None:
        """Give the lock back (nothing for a nested pass); safe to call twice."""
        self.nested = False
        lock, self._lock = self._lock, None
        if lock is None:
            return
        if os.environ.get(HOLDER_ENV) == self._token:
            if self._previous_env is None:
                os.environ.pop(HOLDER_ENV, None)
            else:
                os.environ[HOLDER_ENV] = self._previous_env
        with suppress(OSError):
            holder = self.holder()
            if holder is not None and holder.get("token") == self._token:
                self.owner_path.unlink()
        lock.release()

    def holder(self) -> dict[str, Any] | None:
        """The current holder's record, or ``None`` when there is none or it is unreadable."""
        try:
            record = json.loads(self.owner_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def __enter__(self) -> ProjectLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _hold(self) -> None:
        self._token = f"{os.getpid()}-{secrets.token_hex(6)}"
        record = {
            "pid": os.getpid(),
            "command": self.command,
            "since": utc_now(),
            "host": socket.gethostname(),
            "token": self._token,
        }
        # Written whole and renamed, so a reader never sees half a record.
        partial = self.owner_path.with_name(f"{self.owner_path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(record), encoding="utf-8")
        os.replace(partial, self.owner_path)
        self._previous_env = os.environ.get(HOLDER_ENV)
        os.environ[HOLDER_ENV] = self._token

    def _refusal(self, holder: dict[str, Any] | None) -> str:
        waited = f" after waiting {self.wait_s:g} s" if self.wait_s > 0 else ""
        return (
            f"`{self.command}` not started: the project is locked by {_describe(holder)}{waited} "
            f"(lock {self.path}); data/ and the model registry take one writer at a time. Wait "
            f"for it to finish and run this again, or set {WAIT_ENV}=<seconds> to wait for it"
        )


@contextmanager
def project_lock(
    command: str, *, project: str | Path | None = None, wait_s: float | None = None
) -> Iterator[ProjectLock]:
    """Hold the project lock for the ``with`` block (see :class:`ProjectLock`).

    Raises:
        LockHeldError: if another writer holds it (the message names it and what to do).
    """
    with ProjectLock(command, project=project, wait_s=wait_s) as lock:
        yield lock


def _public(holder: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if holder is None else {k: v for k, v in holder.items() if k != "token"}


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "another process (its record is missing)"
    pid, host = holder.get("pid"), holder.get("host")
    where = "" if host in (None, socket.gethostname()) else f" on {host}"
    gone = "" if where or _alive(pid) else ", which is no longer running on this machine"
    return f"pid {pid}{where} (`{holder.get('command')}`, since {holder.get('since')}{gone})"


def _alive(pid: Any) -> bool:
    if os.name == "nt":  # os.kill would terminate it there
        return True
    try:
        os.kill(int(pid), 0)
    except PermissionError:  # someone else's process
        return True
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    return True
