"""What the tasks of the generated Airflow DAGs run (``airflow/dag_template.j2``).

One function per kind of task. Each takes plain arguments (strings, ints) and returns
JSON-ready values, so a task calls it in Airflow's own interpreter (``@task``) or in the
project's environment (``@task.external_python``), and a test calls it without Airflow.
Nothing here imports Airflow.

- :func:`start_mlflow_run` -- the DAG run's one MLflow run, in the project's experiment.
- :func:`extraction_shards` -- the shard indices the extraction tasks fan out over
  (``feature_extraction.runtime.num_shards``, read when the DAG runs).
- :func:`run_nodes` -- a slice of a pipeline in its own KedroSession, inside the DAG run's
  MLflow run; an extraction shard gets its own child run (its ``shard_index`` differs from
  its siblings', and an MLflow parameter cannot take two values in one run).
- :func:`retraining_decision` -- ``retrain`` of the ``retraining_decision`` dataset, loaded
  through the catalog (so from the lake with ``--env s3``), never from a worker's disk.

The project is :func:`deepfake_kedro.project.deployed_project`: ``DEEPFAKE_KEDRO_PROJECT_PATH``
on the workers, else the project the package is installed from; never the working directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from deepfake_kedro import project as bootstrap

logger = logging.getLogger(__name__)

#: Read by ``mlflow.start_run`` (which kedro-mlflow calls with ``tracking.run.id: null``):
#: every task's session resumes the DAG run's MLflow run. Consumed by each start.
MLFLOW_RUN_ID_ENV = "MLFLOW_RUN_ID"
SHARDS_KEY = ("feature_extraction", "runtime", "num_shards")


def start_mlflow_run(
    pipeline_name: str,
    *,
    env: str,
    conf_source: str | None = None,
    dag_id: str | None = None,
    dag_run_id: str | None = None,
) -> str:
    """Create the DAG run's MLflow run in the project's experiment; return its id.

    Named after the pipeline, as kedro-mlflow names a ``kedro run``'s run, and tagged with the
    DAG and the DAG run (``airflow_dag_id``, ``airflow_run_id``) so that one finds the other.
    The session's context sets the tracking URI and creates the experiment (kedro-mlflow's
    ``after_context_created``), as for a ``kedro run``.
    """
    from mlflow import MlflowClient

    from deepfake_kedro.registry.vocabulary import RUN_TAG_AIRFLOW_DAG_ID, RUN_TAG_AIRFLOW_RUN_ID

    tags = {RUN_TAG_AIRFLOW_DAG_ID: dag_id, RUN_TAG_AIRFLOW_RUN_ID: dag_run_id}
    with bootstrap.session(bootstrap.deployed_project(), env, conf_source=conf_source) as session:
        context = session.load_context()
        experiment = context.mlflow.tracking.experiment._experiment
        run = MlflowClient().create_run(
            experiment.experiment_id,
            run_name=pipeline_name,
            tags={k: v for k, v in tags.items() if v},
        )
    logger.info(
        "MLflow run %s of DAG run %s/%s (pipeline %s)",
        run.info.run_id, dag_id, dag_run_id, pipeline_name,
    )  # fmt: skip
    return run.info.run_id


def extraction_shards(*, env: str, conf_source: str | None = None) -> list[int]:
    """``[0, ..., num_shards - 1]`` for ``feature_extraction.runtime.num_shards``.

    Raises:
        ValueError: if the setting is not an integer >= 1 (naming the key and file).
    """
    params = bootstrap.config_loader(bootstrap.deployed_project(), env, conf_source=conf_source)[
        "parameters"
    ]
    value: Any = params
    for key in SHARDS_KEY:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        value = 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{'.'.join(SHARDS_KEY)}={value!r} is not an integer >= 1 "
            "(conf/base/parameters_feature_extraction.yml)"
        )
    return list(range(value))


def run_nodes(
    pipeline_name: str,
    node_names: Sequence[str],
    *,
    mlflow_run_id: str,
    env: str,
    conf_source: str | None = None,
    shard_index: int | None = None,
) -> None:
    """Run ``node_names`` of ``pipeline_name`` in a KedroSession, in the DAG run's MLflow run.

    Args:
        pipeline_name: The registered pipeline the nodes belong to.
        node_names: The task's nodes (Kedro runs them in order).
        mlflow_run_id: The DAG run's MLflow run (:func:`start_mlflow_run`).
        env: The Kedro environment (``local``, ``s3`` ...).
        conf_source: Another configuration folder or archive than the project's ``conf/``.
        shard_index: For an extraction shard: runs with
            ``feature_extraction.runtime.shard_index`` set (as ``--params`` would), in a child
            run of ``mlflow_run_id``.
    """
    project = bootstrap.deployed_project()
    runtime_params: dict[str, Any] = {}
    if shard_index is not None:
        runtime_params = {"feature_extraction": {"runtime": {"shard_index": int(shard_index)}}}
    with bootstrap.session(project, env, runtime_params, conf_source=conf_source) as session:
        run_id = mlflow_run_id
        if shard_index is not None:
            session.load_context()  # sets the tracking URI of the project
            run_id = _shard_run(mlflow_run_id, node_names, int(shard_index))
        os.environ[MLFLOW_RUN_ID_ENV] = run_id
        _end_active_runs()  # left by an earlier task of this process (`airflow dags test`)
        try:
            session.run(pipeline_names=[pipeline_name], node_names=list(node_names))
        except BaseException:
            _end_active_runs("FAILED")
            raise
        _end_active_runs()


def _end_active_runs(status: str = "FINISHED") -> None:
    """End the MLflow runs this process still has open, so the next task resumes its own.

    kedro-mlflow re-enters the pipeline's run before every node (``nested: true`` stacks it)
    and ends it once; where tasks share a process, the next task's session would otherwise
    log into this one's run.
    """
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run(status)


def _shard_run(parent_run_id: str, node_names: Sequence[str], shard_index: int) -> str:
    """A child run of ``parent_run_id`` for one shard (the same one when a task is retried)."""
    from mlflow import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    name = f"{','.join(node_names)} shard {shard_index}"
    existing = client.search_runs(
        [parent.info.experiment_id],
        filter_string=(
            f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' "
            f"and tags.`{MLFLOW_RUN_NAME}` = '{name}'"
        ),
        max_results=1,
    )
    if existing:
        return existing[0].info.run_id
    child = client.create_run(
        parent.info.experiment_id, run_name=name, tags={MLFLOW_PARENT_RUN_ID: parent_run_id}
    )
    return child.info.run_id


def retraining_decision(*, env: str, conf_source: str | None = None) -> bool:
    """Whether the retraining decision says retrain, loaded through the project's catalog.

    Raises:
        ValueError: if the decision has no boolean ``retrain`` (naming the dataset).
    """
    from deepfake_kedro.commands.retraining import DECISION_DATASET

    with bootstrap.session(bootstrap.deployed_project(), env, conf_source=conf_source) as session:
        decision = session.load_context().catalog.load(DECISION_DATASET)
    retrain = decision.get("retrain") if isinstance(decision, dict) else None
    if not isinstance(retrain, bool):
        raise ValueError(
            f"{DECISION_DATASET} holds no boolean 'retrain' (got {retrain!r}): run the "
            "retraining pipeline's decide_retraining_node first"
        )
    logger.info("Retraining decision: %s (%s)", decision.get("answer"), decision.get("reasons"))
    return retrain
