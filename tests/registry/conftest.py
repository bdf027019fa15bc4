"""A fresh real SQLite MLflow store per test, with its artifacts inside tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

EXPERIMENT = "deepfake_kedro"


@pytest.fixture(scope="session")
def _migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store with the schema created once: creating it takes seconds per database."""
    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def registry_tracking(tmp_path: Path, _migrated_db: Path) -> Iterator[str]:
    """Tracking URI of a copy of the migrated store; experiment ``deepfake_kedro`` keeps its
    artifacts under tmp_path (the default experiment would write ./mlruns in the repo)."""
    db = tmp_path / "mlflow.db"
    shutil.copy(_migrated_db, db)
    uri = f"sqlite:///{db}"
    MlflowClient(uri).create_experiment(
        EXPERIMENT, artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def client(registry_tracking: str) -> MlflowClient:
    return MlflowClient(tracking_uri=registry_tracking)
