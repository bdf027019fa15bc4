"""Project hooks."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


class ProblemReportHooks:
    """When manifest validation fails the run, still save its problems table.

    The ``fail`` policy raises before the node returns, so without this the full list of bad
    rows (the error message shows only the first few) would be lost.
    """

    @hook_impl
    def on_node_error(self, error: Exception, node: Any, catalog: Any) -> None:
        problems = getattr(error, "problems", None)
        if problems is None or "manifest_problems" not in node.outputs:
            return
        try:
            catalog.save("manifest_problems", problems)
        except Exception:  # never hide the original error behind a reporting failure
            logger.exception("Could not save manifest_problems")
            return
        logger.error("All %d manifest problems were saved to 'manifest_problems'", len(problems))


class MlflowLineageHooks:
    """Tag the active MLflow run with the code and data it was made from.

    Runs after kedro-mlflow's own hooks (pluggy calls plugin hooks, registered last, first),
    so the run is already open.
    """

    @hook_impl
    def before_pipeline_run(self) -> None:
        import mlflow

        from deepfake_kedro.lineage import git_commit

        if mlflow.active_run() is not None:
            mlflow.set_tag("git_commit", git_commit() or "unknown")

    @hook_impl
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        """Log typed parameter groups flattened (``feature_extraction.backbones.resnet.arch``).

        Kedro hands nodes validated pydantic models, which kedro-mlflow logs as one string.
        """
        import mlflow
        from pydantic import BaseModel

        if mlflow.active_run() is None:
            return
        flat: dict[str, Any] = {}
        for name, value in inputs.items():
            if name.startswith("params:") and isinstance(value, BaseModel):
                _flatten(name.removeprefix("params:"), value.model_dump(mode="json"), flat)
        if flat:
            logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
            mlflow.log_params({k: v for k, v in flat.items() if k not in logged})

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any) -> None:
        """Stamp the checkpoint with the MLflow run that trained it (lineage for validation)."""
        if dataset_name != "fusion_checkpoint" or not isinstance(data, dict):
            return
        import mlflow

        run = mlflow.active_run()
        data["mlflow_run_id"] = run.info.run_id if run is not None else None

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if dataset_name != "dataset_fingerprint":
            return
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.set_tags(
                {
                    "dataset_fingerprint": data["fingerprint"],
                    "dataset_n_images": data["n_images"],
                    "dataset_newest_captured_at": data.get("newest_captured_at") or "",
                }
            )


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = str(value)[:6000]  # MLflow's limit on a param value
