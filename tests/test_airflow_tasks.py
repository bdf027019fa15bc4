"""What the DAGs' tasks call, without Airflow: the project they work on, the shard indices and
the retraining decision, read through the project's catalog from any folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from kedro_project import make_project

from deepfake_kedro import airflow_tasks
from deepfake_kedro import project as bootstrap
from deepfake_kedro.project import PROJECT_PATH_ENV, ProjectNotFoundError, deployed_project

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy(tmp_path, _migrated_db, monkeypatch) -> Path:
    """A project copy, pointed at by DEEPFAKE_KEDRO_PROJECT_PATH; the test runs elsewhere."""
    for name in ("_current_project", "_running_loader"):  # the sessions set them: restored
        monkeypatch.setattr(bootstrap, name, getattr(bootstrap, name))
    project = make_project(tmp_path / "project", None)
    shutil.copy(_migrated_db, project / "mlflow.db")
    monkeypatch.setenv(PROJECT_PATH_ENV, str(project))
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return project


def test_a_deployed_task_finds_the_installed_project_never_the_working_folder(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(PROJECT_PATH_ENV, raising=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "deepfake_kedro"\n')
    monkeypatch.chdir(other)  # a Kedro project, but not the one the package comes from
    assert deployed_project() == ROOT  # the editable install's project
    monkeypatch.setenv(PROJECT_PATH_ENV, str(other))
    assert deployed_project() == other.resolve()


def test_without_the_variable_or_a_project_install_the_error_says_what_to_set(monkeypatch):
    monkeypatch.delenv(PROJECT_PATH_ENV, raising=False)
    monkeypatch.setattr("deepfake_kedro.project.installed_project", lambda: None)
    with pytest.raises(
        ProjectNotFoundError, match=f"{PROJECT_PATH_ENV} is not set .* every worker"
    ):
        deployed_project()


def test_shard_indices_follow_num_shards_of_the_environment(copy):
    assert airflow_tasks.extraction_shards(env="local") == [0]
    (copy / "conf/local/parameters.yml").write_text(
        yaml.safe_dump({"feature_extraction": {"runtime": {"num_shards": 3}}})
    )
    assert airflow_tasks.extraction_shards(env="local") == [0, 1, 2]
    (copy / "conf/local/parameters.yml").write_text(
        yaml.safe_dump({"feature_extraction": {"runtime": {"num_shards": "two"}}})
    )
    with pytest.raises(ValueError, match="feature_extraction.runtime.num_shards='two'"):
        airflow_tasks.extraction_shards(env="local")


def test_the_decision_is_the_catalogs_retraining_decision(copy):
    decision = copy / "data/08_reporting/retraining_decision.json"
    decision.write_text(json.dumps({"retrain": True, "answer": "yes", "reasons": ["new data"]}))
    assert airflow_tasks.retraining_decision(env="local") is True
    decision.write_text(json.dumps({"answer": "maybe"}))
    with pytest.raises(ValueError, match="retraining_decision holds no boolean 'retrain'"):
        airflow_tasks.retraining_decision(env="local")
    assert not (Path.cwd() / "mlflow.db").exists()  # the session tracked inside the project
