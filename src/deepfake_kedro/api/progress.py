"""Kedro hook through which a job's ``kedro run`` process reports its progress to the API.

When ``DEEPFAKE_KEDRO_PROGRESS_FILE`` names a file, the hook rewrites it (atomically) at each
step as JSON: ``status`` (``running``, ``finished``, ``failed`` with ``error``), ``pid``,
``stage`` (the training pipeline the current node belongs to, e.g. ``feature_extraction``),
``node``, ``nodes_done`` / ``nodes_total``, ``mlflow_run_id`` and, after training, ``epoch``.
Without the variable it does nothing, so ``kedro run`` is unchanged.

``finished`` is written only once every other ``after_pipeline_run`` hook has returned (this
one wraps them), registration included: an API that finds ``finished`` after a crash knows
the run is complete and must not run it again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from deepfake_kedro.values import utc_now

logger = logging.getLogger(__name__)

PROGRESS_FILE_ENV = "DEEPFAKE_KEDRO_PROGRESS_FILE"


class ProgressHooks:
    """Write run progress to the file named by ``DEEPFAKE_KEDRO_PROGRESS_FILE``."""

    def __init__(self) -> None:
        self._state: dict[str, Any] | None = None
        self._stage_of: dict[str, str] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        if not os.environ.get(PROGRESS_FILE_ENV):
            self._state = None
            return
        self._stage_of = _stages(pipeline)
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")]
        self._state = {
            "pipeline": ",".join(str(n) for n in names if n) or "__default__",
            "status": "running",
            "pid": os.getpid(),
            "stage": None,
            "node": None,
            "nodes_done": 0,
            "nodes_total": len(pipeline.nodes),
            "epoch": None,
            "mlflow_run_id": _active_run_id(),
        }
        self._write()

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        if self._state is None:
            return
        self._state["node"] = node.name
        self._state["stage"] = self._stage_of.get(node.name) or node.namespace or self._state["pipeline"]
        self._state["mlflow_run_id"] = _active_run_id() or self._state["mlflow_run_id"]
        self._write()

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        if self._state is None:
            return
        self._state["nodes_done"] += 1
        epoch = _epoch(outputs)
        if epoch is not None:
            self._state["epoch"] = epoch
        self._write()

    @hook_impl
    def on_node_error(self, error: Exception, node: Any) -> None:
        self._fail(f"node {node.name} failed: {type(error).__name__}: {error}")

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        if self._state is None or self._state["status"] == "failed":
            return  # a node error is already recorded, with its node
        self._fail(f"{type(error).__name__}: {error}")

    @hook_impl(wrapper=True)
    def after_pipeline_run(self) -> Iterator[None]:
        """``finished`` once the other ``after_pipeline_run`` hooks (kedro-mlflow's model
        logging, registration) have returned; ``failed`` if one of them raised."""
        try:
            result = yield
        except Exception as error:
            self._fail(f"after the last node: {type(error).__name__}: {error}")
            raise
        if self._state is not None:
            self._state["status"] = "finished"
            self._state["node"] = None
            self._state["mlflow_run_id"] = _active_run_id() or self._state["mlflow_run_id"]
            self._write()
        return result

    def _fail(self, message: str) -> None:
        if self._state is None:
            return
        self._state["status"] = "failed"
        self._state["error"] = message[:4000]
        self._write()

    def _write(self) -> None:
        path = Path(os.environ[PROGRESS_FILE_ENV])
        state = {**(self._state or {}), "updated_at": utc_now()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(state), encoding="utf-8")
            os.replace(tmp, path)  # the API never reads a half-written file
        except OSError:  # progress is best effort; never fail the run over it
            logger.warning("Could not write progress to %s", path, exc_info=True)


def _stages(pipeline: Any) -> dict[str, str]:
    """Node name -> the registered training pipeline it comes from."""
    from kedro.framework.project import pipelines

    from deepfake_kedro.pipeline_registry import TRAINING_PIPELINES

    stage_of: dict[str, str] = {}
    names = {node.name for node in pipeline.nodes}
    for name in TRAINING_PIPELINES:
        try:
            registered = pipelines.get(name)
        except Exception:  # no project configured (a bare session): stages from namespaces
            return {}
        if registered is None:
            continue
        for node in registered.nodes:
            if node.name in names:
                stage_of.setdefault(node.name, name)
    return stage_of


def _active_run_id() -> str | None:
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def _epoch(outputs: dict[str, Any]) -> int | None:
    """Epochs trained, from the fusion checkpoint a training node returns."""
    checkpoint = outputs.get("fusion_checkpoint")
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("epoch"), int):
        return checkpoint["epoch"]
    return None
