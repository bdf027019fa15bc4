"""The registry tests' client, on the shared fresh SQLite store (``registry_tracking``)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient


@pytest.fixture
def client(registry_tracking: str) -> MlflowClient:
    return MlflowClient(tracking_uri=registry_tracking)
