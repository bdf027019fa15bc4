"""The generated DAGs under real Apache Airflow 3.3, on tiny demo data.

`kedro airflow create` writes both DAGs with the project's template into a project copy;
Airflow runs with a temporary AIRFLOW_HOME and a SQLite metadata database; every `airflow`
command starts in a folder outside the project (the project comes from
DEEPFAKE_KEDRO_PROJECT_PATH). The tests share the copy and run in order:

1. the DagBag: no import errors, the pipelines' edges, ``max_active_runs=1``, each extraction
   node a mapped task;
2. `airflow dags test` of the retraining DAG: no champion yet, so it decides to retrain and
   triggers the training DAG;
3. `airflow dags test` of the training DAG, with two extraction shards per branch: every task
   succeeds, the run registers the champion, each shard extracts its part (in its own child
   MLflow run) and the gathered features equal a one-shard extraction;
4. the retraining DAG again, one `airflow tasks test` process per task (as workers run them):
   every task's parameters, metrics and reports land in ONE MLflow run; nothing is new, so the
   trigger is skipped.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from airflow_dags import AirflowHome
from kedro_project import (
    OPEN_GATE,
    ROOT,
    demo_images,
    make_project,
    store_env,
    tiny_parameters,
)
from mlflow import MlflowClient
from slugify import slugify

from deepfake_kedro.features import ExtractionConfig, iter_features
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig, build_extractor

SHARDS = 2
PARAMETERS = tiny_parameters(
    OPEN_GATE,
    {
        "validation": {"robustness": {"enabled": False}},
        "feature_extraction": {"runtime": {"num_shards": SHARDS}},
    },
)
RETRAINING_DAG = "deepfake-kedro-retraining"
TRAINING_DAG = "deepfake-kedro"
EXPERIMENT = "deepfake_kedro"
MODEL = "deepfake-detector"
pytestmark = pytest.mark.slow


def _environ() -> dict[str, str]:
    return store_env()


def _copy(path: Path, _migrated_db: Path, parameters: str) -> Path:
    project = make_project(path, parameters, data_layers=False)
    shutil.copytree(ROOT / "airflow", project / "airflow", ignore=shutil.ignore_patterns("dags"))
    shutil.copy(_migrated_db, project / "mlflow.db")
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory, _migrated_db) -> Path:
    project = _copy(tmp_path_factory.mktemp("airflow_project"), _migrated_db, PARAMETERS)
    demo_images(project / "data/01_raw")
    return project


@pytest.fixture(scope="module")
def airflow(project, tmp_path_factory) -> AirflowHome:
    return AirflowHome.create(project, tmp_path_factory.mktemp("airflow_home"), _environ())


@pytest.fixture(scope="module")
def timings():
    measured: dict[str, float] = {}
    yield measured
    for name, seconds in measured.items():
        sys.stderr.write(f"\n[timing] {name}: {seconds:.1f}\n")


def _client(project: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def _runs(project: Path) -> list:
    client = _client(project)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _dag_runs(project: Path, dag_id: str, run_id: str | None = None) -> list:
    """The MLflow runs of the DAG's runs (of one DAG run with ``run_id``)."""
    return [
        r
        for r in _runs(project)
        if r.data.tags.get("airflow_dag_id") == dag_id
        and run_id in (None, r.data.tags.get("airflow_run_id"))
    ]


def _task(node_name: str) -> str:
    return slugify(node_name)


def _node_edges(pipeline) -> set[tuple[str, str]]:
    return {
        (_task(parent.name), _task(child.name))
        for child in pipeline.nodes
        for parent in pipeline.nodes
        if set(parent.outputs) & set(child.inputs)
    }


def _dag_run_id(airflow: AirflowHome, dag_id: str) -> str:
    runs = airflow.runs(dag_id)
    assert runs, f"{dag_id} has no run"
    return runs[0]["run_id"]


def test_1_dagbag_has_both_dags_with_their_edges_and_no_overlap(airflow, project, timings):
    from deepfake_kedro.pipelines.retraining import create_pipeline as retraining

    started = time.perf_counter()
    bag = airflow.dagbag()
    timings["DagBag of both DAGs, s"] = time.perf_counter() - started
    assert bag["import_errors"] == {}
    assert set(bag["dags"]) == {RETRAINING_DAG, TRAINING_DAG}
    check, train = bag["dags"][RETRAINING_DAG], bag["dags"][TRAINING_DAG]
    for dag in (check, train):
        assert dag["max_active_runs"] == 1 and dag["catchup"] is False
        assert Path(dag["fileloc"]).parent == airflow.dags
    assert check["schedule"] == "0 3 * * *" and train["schedule"] is None

    pipeline = retraining()
    node_tasks = {_task(n.name) for n in pipeline.nodes}
    assert set(check["tasks"]) == node_tasks | {
        "start_mlflow_run",
        "should_retrain",
        "trigger_training",
    }
    edges = {tuple(e) for e in check["edges"]}
    assert _node_edges(pipeline) <= edges
    # Every Kedro task waits for the shared MLflow run; the trigger waits for the decision.
    assert {("start_mlflow_run", t) for t in node_tasks} <= edges
    assert {
        ("decide-retraining-node", "should_retrain"),
        ("should_retrain", "trigger_training"),
    } <= edges
    assert check["mapped"] == []
    assert check["operators"]["trigger_training"] == "TriggerDagRunOperator"
    assert check["operators"]["should_retrain"] == "_ShortCircuitDecoratedOperator"
    assert {"validate-raw-data-node", "train-ensemble-node", "prepare-registration-node"} <= set(
        train["tasks"]
    )


def test_1b_the_training_dag_maps_each_extraction_over_the_shards(airflow):
    from deepfake_kedro.pipelines.feature_extraction import create_pipeline as extraction

    train = airflow.dagbag()["dags"][TRAINING_DAG]
    extract = extraction()
    extract_tasks = {_task(n.name) for n in extract.nodes if "sharded" in n.tags}
    assert extract_tasks and set(train["mapped"]) == extract_tasks
    train_edges = {tuple(e) for e in train["edges"]}
    assert _node_edges(extract) <= train_edges
    assert {("extraction_shards", t) for t in extract_tasks} <= train_edges
    assert {("split-dataset-node", t) for t in extract_tasks} <= train_edges


def test_2_retraining_dag_without_champion_decides_to_retrain_and_triggers(
    airflow, project, timings
):
    started = time.perf_counter()
    airflow.cli("dags", "test", RETRAINING_DAG)
    timings["airflow dags test (retraining DAG), s"] = time.perf_counter() - started

    run_id = _dag_run_id(airflow, RETRAINING_DAG)
    states = airflow.task_states(RETRAINING_DAG, run_id)
    assert set(states.values()) == {"success"}, states
    assert len(states) == 12
    # The training DAG was triggered (queued: `dags test` runs no scheduler to start it).
    assert [r["state"] for r in airflow.runs(TRAINING_DAG)] == ["queued"]
    (run,) = _dag_runs(project, RETRAINING_DAG, run_id)  # the DAG run's one MLflow run
    assert run.data.tags["mlflow.runName"] == "retraining"
    assert run.data.metrics["retraining.retrain"] == 1.0
    assert run.data.metrics["retraining.champion_triggered"] == 1.0
    assert not (airflow.cwd / "mlflow.db").exists() and not list(airflow.cwd.iterdir())


def test_3_training_dag_runs_every_task_and_registers_the_champion(airflow, project, timings):
    started = time.perf_counter()
    airflow.cli("dags", "test", TRAINING_DAG)
    timings[f"airflow dags test (training DAG, {SHARDS} shards), s"] = time.perf_counter() - started

    run_id = next(r["run_id"] for r in airflow.runs(TRAINING_DAG) if r["state"] != "queued")
    states = airflow.task_states(TRAINING_DAG, run_id)
    assert set(states.values()) == {"success"}, states

    (run,) = _dag_runs(project, TRAINING_DAG, run_id)
    client = _client(project)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == run.info.run_id
    assert any(k.startswith("training.") for k in run.data.metrics)
    assert any(k.startswith("validation.") for k in run.data.metrics)


def test_3b_the_gathered_features_of_the_shards_equal_a_one_shard_run(airflow, project):
    run_id = next(r["run_id"] for r in airflow.runs(TRAINING_DAG) if r["state"] != "queued")
    states = airflow.task_states(TRAINING_DAG, run_id)
    mapped = {task for task, index in states if index >= 0}
    assert mapped and all(
        sorted(i for t, i in states if t == task) == list(range(SHARDS)) for task in mapped
    )
    (run,) = _dag_runs(project, TRAINING_DAG, run_id)
    # One child run per extraction shard (their shard_index differs), under the DAG's run.
    children = [
        r for r in _runs(project) if r.data.tags.get("mlflow.parentRunId") == run.info.run_id
    ]
    assert len(children) == SHARDS * len(mapped)
    assert {r.data.params["feature_extraction.runtime.shard_index"] for r in children} == {
        str(i) for i in range(SHARDS)
    }

    # Each shard extracted its part of the images, the gather task collected all of them.
    split = pd.read_parquet(project / "data/03_primary/split_manifest.parquet")
    hashes = set(split["content_hash"])
    for task in sorted(mapped):
        branch = task.removesuffix("-extract-features-node")
        report = json.loads(
            (project / f"data/08_reporting/feature_extraction/{branch}.json").read_text()
        )
        assert report["num_shards"] == SHARDS and report["n_extracted"] == len(hashes)
        assert all(0 < shard["n_extracted"] < len(hashes) for shard in report["shards"])
        features = dict(np.load(project / f"data/05_model_input/{branch}_features.npz"))
        assert sorted(features["content_hash"]) == sorted(hashes)

    # ... and they equal a one-shard extraction (the spectral branch: weight-free, fast;
    # every branch: tests/pipelines/feature_extraction/test_sharded_extraction.py).
    features = dict(np.load(project / "data/05_model_input/spectral_features.npz"))
    extractor = build_extractor(BackboneConfig(kind="spectral", image_size=64))
    config = ExtractionConfig(batch_size=16, num_workers=0, progress=False)
    rows = split.drop_duplicates("content_hash")
    single = {
        h: f
        for batch, values in iter_features(
            rows, ImageStore(str(project / "data/01_raw")), extractor, config
        )
        for h, f in zip(batch, values, strict=True)
    }
    np.testing.assert_allclose(
        features["features"],
        np.stack([single[h] for h in features["content_hash"]]),
        rtol=1e-5,
        atol=1e-6,
    )


# Eleven processes, each importing Airflow, Kedro, torch and MLflow: minutes on 2 busy cores.
@pytest.mark.timeout(1200)
def test_4_tasks_in_separate_processes_share_one_mlflow_run(airflow, project, timings):
    from deepfake_kedro.pipelines.retraining import create_pipeline as retraining

    before = {r.info.run_id for r in _runs(project)}
    bag = airflow.dagbag()["dags"][RETRAINING_DAG]
    run_id = "separate-processes"
    airflow.cli("dags", "trigger", RETRAINING_DAG, "--run-id", run_id)
    started = time.perf_counter()
    for task in bag["order"]:
        if task != "trigger_training":  # the scheduler would skip it: nothing to retrain
            airflow.cli("tasks", "test", RETRAINING_DAG, task, run_id)
    timings["retraining DAG, one process per task, s"] = time.perf_counter() - started

    states = airflow.task_states(RETRAINING_DAG, run_id)
    assert states[("should_retrain", -1)] == "success"
    assert states[("trigger_training", -1)] == "skipped"  # the decision: nothing new
    new = [r for r in _runs(project) if r.info.run_id not in before]
    assert [r.info.run_id for r in new] == [
        r.info.run_id for r in _dag_runs(project, RETRAINING_DAG, run_id)
    ]
    (run,) = new
    assert run.data.metrics["retraining.retrain"] == 0.0
    # Each task logged its node's parameters into that one run; the last its decision.
    for node in retraining().nodes:
        for group in (i.removeprefix("params:") for i in node.inputs if i.startswith("params:")):
            assert any(p == group or p.startswith(f"{group}.") for p in run.data.params), (
                node.name,
                group,
            )
    artifacts = {a.path for a in _client(project).list_artifacts(run.info.run_id, "retraining")}
    assert "retraining/retraining_decision.json" in artifacts
