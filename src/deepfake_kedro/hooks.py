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
        from deepfake_kedro.registry.vocabulary import TAG_GIT_COMMIT

        if mlflow.active_run() is not None:
            mlflow.set_tag(TAG_GIT_COMMIT, git_commit() or "unknown")

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

        from deepfake_kedro.training.checkpoint import stamp_training_run

        run = mlflow.active_run()
        stamp_training_run(data, run.info.run_id if run is not None else None)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        """Tag the run with the data's lineage (the same names registration puts on versions)."""
        if dataset_name != "dataset_fingerprint":
            return
        import mlflow

        from deepfake_kedro.registry.vocabulary import dataset_tags

        if mlflow.active_run() is not None:
            mlflow.set_tags(dataset_tags(data))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = str(value)[:6000]  # MLflow's limit on a param value


class RegistrationHooks:
    """Register the run's MLflow model as the registration pipeline decided.

    kedro-mlflow logs the inference pipeline as the run's model in its own
    ``after_pipeline_run``, after every node ran; this hook is ``trylast`` so it runs after
    that, reads ``registration_request`` and hands it to
    :func:`registry.registration.register_logged_model`, which decides and registers. Its
    result is saved as ``registration_result``.

    If the process dies between registration and promotion, ``champion`` has not moved and
    the new version holds ``challenger`` at most; ``kedro run --pipelines registration``
    logs and registers the last checkpoint again without retraining.
    """

    def __init__(self) -> None:
        self._run_id: str | None = None

    @hook_impl(trylast=True)
    def before_pipeline_run(self) -> None:
        import mlflow

        run = mlflow.active_run()  # opened by kedro-mlflow, whose hook ran first
        self._run_id = run.info.run_id if run is not None else None

    @hook_impl(trylast=True)
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        from kedro_mlflow.pipeline.pipeline_ml import PipelineML
        from mlflow import MlflowClient

        from deepfake_kedro.pipelines.registration.pipeline import REQUEST
        from deepfake_kedro.registry.registration import register_logged_model

        if not isinstance(pipeline, PipelineML) or REQUEST not in pipeline.all_outputs():
            return
        if self._run_id is None:
            logger.warning("MLflow tracking is off for this run: nothing is registered")
            return
        result = register_logged_model(
            MlflowClient(),
            catalog.load(REQUEST),
            catalog.load("params:registry"),
            run_id=self._run_id,
            model_artifact=pipeline.log_model_kwargs.get("name", "model"),
        )
        catalog.save("registration_result", result)


class RevalidationHooks:
    """Record on a registered version the outcome of validating it again.

    ``kedro run --pipelines validation --params model_uri=models:/<name>/<version>``
    validates a registered version on the current data; afterwards this hook hands the
    verdict to :func:`registry.registration.record_revalidation`, which tags that version
    (``last_validation_*``). No alias moves.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        # tryfirst: refuse before kedro-mlflow opens a run that would stay open.
        uri = _runtime_model_uri(run_params)
        if uri and "fusion_checkpoint" in pipeline.all_outputs():
            raise ValueError(
                f"model_uri={uri} selects a registered version to validate or score, but this "
                "run trains a new model. Validate it with `kedro run --pipelines validation "
                "--params model_uri=...`, score with `--pipelines inference`, or drop model_uri"
            )

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        uri = _runtime_model_uri(run_params)
        if not uri or "validation_verdict" not in pipeline.all_outputs():
            return
        import mlflow
        from mlflow import MlflowClient

        from deepfake_kedro.registry.registration import record_revalidation

        run = mlflow.last_active_run()  # kedro-mlflow's run of this pipeline, now ended
        record_revalidation(
            MlflowClient(),
            uri,
            catalog.load("fusion_checkpoint").get("registry_version"),
            catalog.load("validation_verdict"),
            run.info.run_id if run is not None else None,
        )


def _runtime_model_uri(run_params: dict[str, Any]) -> str | None:
    """The ``model_uri`` runtime parameter (``--params model_uri=...``) of a run, if any."""
    value = (run_params.get("runtime_params") or {}).get("model_uri")
    return (str(value).strip() or None) if value else None


#: Outputs that make a run a writer of data/ and the registry: the split the training reads,
#: the checkpoint, the validation verdict (and a revalidated version's tags), a registration.
LOCKED_OUTPUTS = frozenset(
    {"split_manifest", "fusion_checkpoint", "validation_verdict", "registration_request"}
)


class ProjectLockHooks:
    """Hold the project lock (:mod:`deepfake_kedro.project_lock`) while a writer runs.

    A run whose pipeline produces one of :data:`LOCKED_OUTPUTS` (``__default__``,
    ``data_ingestion``, ``ensemble_training``, ``validation``, ``registration``) takes the lock
    before any other ``before_pipeline_run`` hook (a wrapper, so a refused run opens no MLflow
    run) and gives it back after every ``after_pipeline_run`` / ``on_pipeline_error`` hook
    (registration and promotion included). Inside ``kedro retrain`` the lock is already held
    by the command: its sessions pass (the lock is re-entrant for its holder).
    """

    def __init__(self) -> None:
        self._lock: Any = None

    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> Any:
        from deepfake_kedro.project_lock import ProjectLock

        self._release()  # a run of this process that ended without either closing hook
        if LOCKED_OUTPUTS & set(pipeline.all_outputs()):
            self._lock = ProjectLock(
                _run_command(run_params), project=run_params.get("project_path")
            ).acquire()
        try:
            return (yield)
        except BaseException:  # a later hook refused the run: no closing hook will come
            self._release()
            raise

    @hook_impl(wrapper=True)
    def after_pipeline_run(self) -> Any:
        try:
            return (yield)
        finally:
            self._release()

    @hook_impl(wrapper=True)
    def on_pipeline_error(self) -> Any:
        try:
            return (yield)
        finally:
            self._release()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


def _run_command(run_params: dict[str, Any]) -> str:
    """``kedro run --pipelines <names>`` (plus the env) for the lock's holder record."""
    names = run_params.get("pipeline_names") or []
    command = "kedro run" + (f" --pipelines {','.join(names)}" if names else "")
    env = run_params.get("env")
    return command + (f" --env {env}" if env else "")
