"""What the worker asks MLflow about a job's run, and how it closes a run nobody will close.

A run's own process ends its MLflow run; a process killed by a signal (a cancel, a stop of
the API, a crash) cannot, and its run would stay ``RUNNING`` for ever. The worker then ends
it as ``KILLED`` or ``FAILED`` through :meth:`MlflowRuns.end`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from deepfake_kedro.registry.vocabulary import (
    RUN_TAG_REGISTERED_VERSION,
    RUN_TAG_VALIDATED_MODEL_URI,
)

logger = logging.getLogger(__name__)

RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"


@dataclass(frozen=True)
class RunRecord:
    """What the tracking store holds of a run.

    Attributes:
        status: MLflow's run status (``RUNNING``, ``FINISHED``, ``FAILED``, ``KILLED``, ...).
        outcome_recorded: The run's closing hook got to the end: registration tagged it
            ``registered_version`` (training) or revalidation tagged it
            ``validated_model_uri`` (validation).
    """

    status: str
    outcome_recorded: bool


class RunTracker(Protocol):
    """The questions the worker asks about a job's run (see :class:`MlflowRuns`)."""

    def registered_version(self, run_id: str) -> str | None: ...

    def run(self, run_id: str) -> RunRecord | None: ...

    def end(self, run_id: str, status: str) -> None: ...


class NoTracking:
    """A tracker that knows no run (a worker built without MLflow)."""

    def registered_version(self, run_id: str) -> str | None:
        return None

    def run(self, run_id: str) -> RunRecord | None:
        return None

    def end(self, run_id: str, status: str) -> None:
        return None


class MlflowRuns:
    """Job runs in the MLflow store of ``client``; no call raises (the answer is ``None``).

    Args:
        client: Client on the project's tracking and registry stores.
        model_name: The registered model training jobs register versions of.
    """

    def __init__(self, client: Any, model_name: str) -> None:
        self.client = client
        self.model_name = model_name

    def registered_version(self, run_id: str) -> str | None:
        """The newest version of the model that ``run_id`` registered, else ``None``."""
        try:
            found = self.client.search_model_versions(
                f"name = '{self.model_name}' and run_id = '{run_id}'"
            )
        except Exception:
            logger.exception("Could not look up the version registered by run %s", run_id)
            return None
        return str(max(int(mv.version) for mv in found)) if found else None

    def run(self, run_id: str) -> RunRecord | None:
        """Status and closing tags of ``run_id``; ``None`` if the store cannot tell."""
        try:
            run = self.client.get_run(run_id)
        except Exception:
            logger.warning("Could not read MLflow run %s", run_id, exc_info=True)
            return None
        tags = run.data.tags
        closing = (RUN_TAG_REGISTERED_VERSION, RUN_TAG_VALIDATED_MODEL_URI)
        return RunRecord(status=run.info.status, outcome_recorded=any(t in tags for t in closing))

    def end(self, run_id: str, status: str) -> None:
        """End ``run_id`` with ``status`` if it is still ``RUNNING`` (its process is gone)."""
        record = self.run(run_id)
        if record is None or record.status != RUNNING:
            return
        try:
            self.client.set_terminated(run_id, status=status)
        except Exception:
            logger.warning("Could not end MLflow run %s as %s", run_id, status, exc_info=True)
            return
        logger.info("MLflow run %s ended as %s: its process is gone", run_id, status)
