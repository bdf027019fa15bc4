"""Store probes: a new connection each, the SQLite file checked, the failure named with its fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakes import folder, unreadable
from kedro_project import make_project

from deepfake_kedro.api.config import ApiConfig
from deepfake_kedro.api.probes import (
    StoreUnavailable,
    check_stores_at_start,
    configured_mlflow_uris,
    probe_database,
)

AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="chmod does not deny reads to root")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", None)


def test_a_new_project_passes_and_creates_nothing(project):
    check_stores_at_start(project, None, ApiConfig())
    assert not (project / "mlflow.db").exists() and not (project / "data/api").exists()
    assert configured_mlflow_uris(project, None) == (f"sqlite:///{project}/mlflow.db", None)




def not_a_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("image_path,label\n" * 100)


@pytest.mark.parametrize("break_it", [folder, not_a_database, pytest.param(unreadable, marks=AS_ROOT)])
@pytest.mark.parametrize(("store", "name", "fix"), [
    ("mlflow.db", "MLflow store", "mlflow_tracking_uri"),
    ("data/api/jobs.db", "job store", "database_url"),
])
def test_an_unusable_store_is_named_with_its_fix(project, break_it, store, name, fix):
    break_it(project / store)
    with pytest.raises(StoreUnavailable) as raised:
        check_stores_at_start(project, None, ApiConfig())
    message = str(raised.value)
    assert name in message and str(project / store) in message and fix in message
    assert "\n" not in message


def test_a_missing_table_fails_once_the_store_should_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    probe_database(url, None)  # not created yet: fine at start-up
    with pytest.raises(FileNotFoundError):
        probe_database(url, "api_jobs")
    import sqlite3

    sqlite3.connect(tmp_path / "jobs.db").close()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        probe_database(url, "api_jobs")
