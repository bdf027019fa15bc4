"""The API in-process (FastAPI's TestClient, no worker) on a throw-away project folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deepfake_kedro.api.app import ProjectInfo, create_app
from deepfake_kedro.api.config import ApiConfig
from deepfake_kedro.registry.config import RegistryConfig


@pytest.fixture
def api_root(tmp_path: Path, _migrated_db: Path) -> Path:
    """A folder with a manifest under the default dataset root and an empty MLflow store."""
    (tmp_path / "data/01_raw").mkdir(parents=True)
    (tmp_path / "data/01_raw/manifest.csv").write_text("image_path,label\n")
    shutil.copy(_migrated_db, tmp_path / "mlflow.db")
    return tmp_path


@pytest.fixture
def api_client(api_root: Path) -> Callable[..., TestClient]:
    """``api_client(**settings)``: a client of the app on ``api_root`` (worker not started)."""

    def make(**settings: Any) -> TestClient:
        tracking = f"sqlite:///{api_root / 'mlflow.db'}"
        project = ProjectInfo(path=api_root, env=None, training_params={},
                              registry=RegistryConfig(), tracking_uri=tracking,
                              registry_uri=tracking)
        app = create_app(project, ApiConfig(**settings), start_worker=False)
        return TestClient(app, raise_server_exceptions=False)

    return make
