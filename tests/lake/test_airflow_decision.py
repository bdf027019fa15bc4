"""The retraining DAG with `--env s3` on real Airflow and a real S3 server (moto): the task that
gates the training DAG reads `retraining_decision` through the catalog, from the lake, whatever
a worker's local disk holds (a stale file, or none).

The DAG is generated with ``--params python=<interpreter>``: its Kedro tasks run in the
project's own environment through ``@task.external_python`` (here the same interpreter), and
`should_retrain` skips itself and the trigger by its exit code when the decision says no.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from airflow_dags import AirflowHome
from kedro_project import ROOT, make_project, store_env, tiny_parameters

PREFIX = "team/airflow"
DAG = "deepfake-kedro-s3-retraining"
DECISION = "08_reporting/retraining_decision.json"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake_bucket(lake_server) -> str:
    name = "deepfake-lake-airflow"
    lake_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def project(tmp_path_factory, _migrated_db) -> Path:
    path = make_project(tmp_path_factory.mktemp("s3_dag_project"), tiny_parameters(), env="s3")
    shutil.copytree(ROOT / "airflow", path / "airflow", ignore=shutil.ignore_patterns("dags"))
    shutil.copy(_migrated_db, path / "mlflow.db")
    return path


@pytest.fixture(scope="module")
def airflow(project, lake_server, lake_bucket, tmp_path_factory) -> AirflowHome:
    environ = store_env(
        **lake_server.env(), DEEPFAKE_LAKE_BUCKET=lake_bucket, DEEPFAKE_LAKE_PREFIX=PREFIX
    )
    return AirflowHome.create(
        project,
        tmp_path_factory.mktemp("airflow_home_s3"),
        environ,
        pipelines="retraining",
        create_args=("--env", "s3", "--params", f"python={sys.executable}"),
    )


def _decide(lake_server, bucket: str, retrain: bool) -> None:
    decision = {"retrain": retrain, "answer": "yes" if retrain else "no", "reasons": ["test"]}
    lake_server.client().put_object(
        Bucket=bucket, Key=f"{PREFIX}/{DECISION}", Body=json.dumps(decision).encode()
    )


def _should_retrain(airflow: AirflowHome, run_id: str) -> str:
    airflow.cli("dags", "trigger", DAG, "--run-id", run_id)
    result = airflow.cli("tasks", "test", DAG, "should_retrain", run_id, check=False)
    states = airflow.task_states(DAG, run_id)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return states[("should_retrain", -1)]


def test_the_dag_runs_its_kedro_tasks_in_the_projects_interpreter(airflow):
    bag = airflow.dagbag()
    assert bag["import_errors"] == {}
    operators = bag["dags"][DAG]["operators"]
    assert operators["should_retrain"] == "_PythonExternalDecoratedOperator"
    assert operators["decide-retraining-node"] == "_PythonExternalDecoratedOperator"
    assert operators["trigger_training"] == "TriggerDagRunOperator"
    source = next(airflow.dags.glob("*.py")).read_text()
    assert f'python="{sys.executable}"' in source and 'env="s3"' in source


def test_the_decision_comes_from_the_lake_not_the_local_disk(
    airflow, project, lake_server, lake_bucket
):
    local = project / "data" / DECISION
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(json.dumps({"retrain": False, "answer": "no", "reasons": ["stale"]}))

    _decide(lake_server, lake_bucket, retrain=True)
    assert _should_retrain(airflow, "lake-says-yes") == "success"  # the stale file says no

    local.unlink()
    _decide(lake_server, lake_bucket, retrain=False)
    assert _should_retrain(airflow, "lake-says-no") == "skipped"  # no local file at all
    assert not local.exists()
