"""A run stopped by Ctrl-C or SIGTERM ends its MLflow runs as KILLED, not RUNNING or FINISHED.

Kedro calls ``on_pipeline_error`` (where kedro-mlflow ends the run as FAILED) only for an
``Exception``: a ``KeyboardInterrupt`` passes it by, and MLflow's exit handler then ends the
run as FINISHED; SIGTERM's default action kills the process with the run left RUNNING for
good. :func:`interruptible` turns SIGTERM into :class:`Terminated` (a ``KeyboardInterrupt``,
so no ``except Exception`` in Kedro or a node stops it) and, on either interruption, ends every
active MLflow run as KILLED before the interruption goes on. After a SIGTERM the process then
dies by that signal, so its parent (the API worker, a shell) sees the usual exit status.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

KILLED = "KILLED"


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised in the main thread by :func:`interruptible`'s handler)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"stopped by signal {signum} (SIGTERM)")


def end_active_runs(status: str = KILLED) -> list[str]:
    """End every MLflow run active in this thread with ``status``; their ids, innermost first."""
    if "mlflow" not in sys.modules:  # nothing can be active
        return []
    import mlflow

    ended = []
    while (run := mlflow.active_run()) is not None:
        ended.append(run.info.run_id)
        mlflow.end_run(status)
    return ended


@contextmanager
def interruptible(what: str) -> Iterator[None]:
    """Run the block so that Ctrl-C or SIGTERM ends its MLflow runs as KILLED.

    SIGTERM is caught only in the main thread (Python's rule for signal handlers); elsewhere
    the block runs as is.

    Args:
        what: The command, for the log line (``"kedro run"``).
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except KeyboardInterrupt as interruption:
        terminated = isinstance(interruption, Terminated)
        if terminated:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM waits for this
        ended = end_active_runs(KILLED)
        logger.warning(
            "%s was interrupted (%s); MLflow run(s) ended as KILLED: %s",
            what,
            "SIGTERM" if terminated else "Ctrl-C",
            ", ".join(ended) or "none was active",
        )
        if terminated and os.name == "posix":
            previous = None  # not restored: the process ends here, by the signal it got
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
