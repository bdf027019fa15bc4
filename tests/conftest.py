"""Shared fixtures: tiny generated demo data, an isolated MLflow store, no telemetry."""

from __future__ import annotations

import os

# Before kedro is imported anywhere: no telemetry prompt or network call from tests.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from deepfake_kedro.demo import DemoConfig, write_demo_dataset

TINY_DEMO = DemoConfig(n_images=60, image_size=64, seed=1)


@pytest.fixture(scope="session")
def tiny_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with manifest.csv and 60 small generated images (read-only for tests)."""
    out = tmp_path_factory.mktemp("tiny_demo")
    write_demo_dataset(out, TINY_DEMO, progress=False)
    return out


@pytest.fixture
def mlflow_tracking(tmp_path: Path):
    """A real SQLite MLflow store in tmp_path; active runs are ended afterwards."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    # Artifacts in tmp_path too, not in ./mlruns of the working directory.
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("tests", artifact_location=(tmp_path / "artifacts").as_uri())
    )
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def _migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store with the schema created once: creating it takes seconds per database."""
    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def registry_tracking(tmp_path: Path, _migrated_db: Path) -> Iterator[str]:
    """Tracking URI of a copy of the migrated store, set as MLflow's; experiment
    ``deepfake_kedro`` keeps its artifacts under tmp_path (the default experiment would write
    ./mlruns in the repo)."""
    db = tmp_path / "mlflow.db"
    shutil.copy(_migrated_db, db)
    uri = f"sqlite:///{db}"
    MlflowClient(uri).create_experiment(
        "deepfake_kedro", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)
