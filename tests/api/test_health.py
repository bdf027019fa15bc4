"""``/health`` probes each store on a new connection: an open pooled connection must not hide
a database file that has become unusable."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="chmod does not deny reads to root")


def warm(client) -> None:
    """Use both stores once, so that their pools hold open connections."""
    assert client.get("/v1/train/jobs").status_code == 200
    assert client.get("/v1/train/models").status_code == 200
    assert client.get("/health").status_code == 200


def replace_by_folder(path: Path) -> None:
    path.rename(path.with_name(path.name + ".moved"))
    path.mkdir()


def unreadable(path: Path) -> None:
    path.chmod(0)


def health(client) -> tuple[int, dict]:
    started = time.monotonic()
    response = client.get("/health")
    assert time.monotonic() - started < 10  # short timeouts: health always answers
    return response.status_code, response.json()


def test_all_stores_reachable(api_client):
    status, body = health(api_client())
    assert status == 200 and body["status"] == "ok"
    assert all(check["ok"] for check in body["checks"].values()), body


@pytest.mark.parametrize("break_it", [replace_by_folder, pytest.param(unreadable, marks=AS_ROOT)])
def test_an_unusable_mlflow_store_is_a_503_naming_it(api_client, api_root, break_it):
    client = api_client()
    warm(client)
    break_it(api_root / "mlflow.db")
    status, body = health(client)
    assert status == 503 and body["status"] == "degraded"
    assert not body["checks"]["mlflow"]["ok"] and body["checks"]["database"]["ok"]
    assert "MLflow store" in body["checks"]["mlflow"]["detail"]
    assert "mlflow.db" in body["checks"]["mlflow"]["detail"]


@pytest.mark.parametrize("break_it", [replace_by_folder, pytest.param(unreadable, marks=AS_ROOT)])
def test_an_unusable_job_store_is_a_503_naming_it(api_client, api_root, break_it):
    client = api_client()
    warm(client)
    break_it(api_root / "data/api/jobs.db")
    status, body = health(client)
    assert status == 503 and not body["checks"]["database"]["ok"] and body["checks"]["mlflow"]["ok"]
    assert "job store" in body["checks"]["database"]["detail"]
    assert "jobs.db" in body["checks"]["database"]["detail"]


def test_a_file_that_is_no_database_is_a_503(api_client, api_root):
    client = api_client()
    warm(client)
    (api_root / "mlflow.db").unlink()
    shutil.copy(api_root / "data/01_raw/manifest.csv", api_root / "mlflow.db")
    status, body = health(client)
    assert status == 503 and not body["checks"]["mlflow"]["ok"]
