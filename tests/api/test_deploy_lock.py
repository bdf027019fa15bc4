"""Deploying through the API takes the project lock like every other writer."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest
from mlflow import MlflowClient
from registry_helpers import EXPERIMENT, aliases, register

from deepfake_kedro.registry.config import RegistryConfig

HOLD = """
import sys, time
from deepfake_kedro.project_lock import project_lock
with project_lock("kedro run (another writer)", project=sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def tracking(api_root):
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{api_root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def test_deploy_while_another_writer_holds_the_lock_is_a_409(api_client, api_root, tracking):
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT)
    client = MlflowClient(tracking)
    register(client, RegistryConfig(), 0.9)
    second = register(client, RegistryConfig(), 0.8).version
    api = api_client()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(api_root)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = api.post("/v1/train/deploy", json={"version": second})
        assert refused.status_code == 409, refused.text
        assert "locked by" in refused.json()["detail"]
        assert aliases(client)["champion"] == "1"  # nothing moved
    finally:
        holder.communicate("\n", timeout=30)
    deployed = api.post("/v1/train/deploy", json={"version": second})
    assert deployed.status_code == 200, deployed.text
    assert aliases(client)["champion"] == second
