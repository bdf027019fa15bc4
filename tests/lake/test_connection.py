"""The lake's one retry layer and time budget: S3 locations of a catalog, s3fs, MLflow's client."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest
from kedro.io import DataCatalog
from s3fs import S3FileSystem

from deepfake_kedro.lake.connection import (
    budget,
    endpoint_of,
    lake_locations,
    use_lake_budget_for_boto3,
    use_one_retry_layer,
)
from deepfake_kedro.project import config_loader

ROOT = Path(__file__).resolve().parents[2]
CREDS = {"key": "K", "secret": "S", "client_kwargs": {"endpoint_url": "http://store:9000"}}
FS_ARGS = {"config_kwargs": {"read_timeout": 8}, "open_args_load": {"mode": "rb"}}


@pytest.fixture
def restore_globals(monkeypatch):
    """s3fs's class setting and boto3's default session are process-wide: put them back."""
    monkeypatch.setattr(S3FileSystem, "retries", S3FileSystem.retries)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", boto3.DEFAULT_SESSION)


def test_locations_group_datasets_by_bucket_endpoint_and_key():
    configs = {
        "raw": {"filepath": "s3://lake/p/raw.csv", "credentials": CREDS, "fs_args": FS_ARGS},
        "images": {"path": "s3://lake/p/images", "credentials": CREDS},
        "report": {  # a wrapper dataset: the location is in its inner dataset
            "type": "MlflowRemoteArtifactDataset",
            "dataset": {"filepath": "s3a://other/r.json", "credentials": CREDS},
        },
        "local": {"filepath": "data/x.csv"},
        "memory": {"type": "MemoryDataset"},
    }
    locations = lake_locations(configs)
    assert [(loc.bucket, loc.datasets) for loc in locations] == [
        ("lake", ("raw", "images")),
        ("other", ("report",)),
    ]
    first = locations[0]
    assert first.uri == "s3://lake/p/raw.csv" and first.endpoint == "http://store:9000"
    assert first.storage_options == {"config_kwargs": {"read_timeout": 8}, **CREDS}


def test_endpoint_and_budget_of_storage_options():
    assert endpoint_of(CREDS) == "http://store:9000"
    assert endpoint_of({"endpoint_url": "http://x"}) == "http://x"
    assert endpoint_of({"client_kwargs": {"endpoint_url": None}}) is None
    config_kwargs = {"connect_timeout": 5, "read_timeout": 8, "retries": {"mode": "standard"},
                     "max_pool_connections": 50}
    assert budget({"config_kwargs": config_kwargs}) == {
        "connect_timeout": 5, "read_timeout": 8, "retries": {"mode": "standard"}
    }


def test_s3fs_tries_once(restore_globals):
    fs = S3FileSystem(skip_instance_cache=True)
    use_one_retry_layer(fs)
    assert fs.retries == 1 and S3FileSystem.retries == 5
    use_one_retry_layer()
    assert S3FileSystem(skip_instance_cache=True).retries == 1


def test_mlflow_s3_client_gets_the_lake_budget(restore_globals, monkeypatch):
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    options = config_loader(ROOT, "s3")["catalog"]["validated_manifest"]["fs_args"]
    use_lake_budget_for_boto3(options)
    # A fresh endpoint: MLflow caches its clients by endpoint.
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:1/budget-test")
    client = S3ArtifactRepository("s3://lake/mlartifacts")._get_s3_client()
    assert client.meta.config.connect_timeout == 5
    assert client.meta.config.read_timeout == 8
    assert client.meta.config.retries == {"total_max_attempts": 3, "mode": "adaptive"}
    assert client.meta.config.signature_version == "s3v4"  # MLflow's own settings still apply


def test_a_dataset_of_the_s3_env_gives_up_on_a_silent_endpoint_within_its_budget(
    restore_globals, monkeypatch, silent_endpoint
):
    # The budget of conf/s3/globals.yml for one request: 3 attempts x 8 s + backoff.
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    loader = config_loader(ROOT, "s3")
    catalog = DataCatalog.from_config(
        {"raw_manifest": loader["catalog"]["raw_manifest"]}, loader["credentials"]
    )
    use_one_retry_layer()
    catalog["raw_manifest"]  # materialise the dataset (imports, no request) before timing
    silent_endpoint.accepted.clear()
    start = time.time()
    with pytest.raises(Exception, match="Read timeout"):
        catalog.load("raw_manifest")
    elapsed = time.time() - start
    time.sleep(0.5)  # let the server thread count the last connection
    # botocore's 3 attempts and no s3fs retries on top (they made it 15)
    assert 1 <= len(silent_endpoint.accepted) <= 3, silent_endpoint.accepted
    assert elapsed < 45, elapsed
