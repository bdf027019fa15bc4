"""A run's first contact with the lake (LakeHooks.before_pipeline_run) against a real S3 server."""

from __future__ import annotations

import time

import boto3
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node
from s3fs import S3FileSystem

from deepfake_kedro.lake.hooks import LakeHooks, LakeUnreachableError

RUN_PARAMS = {"env": "s3"}


@pytest.fixture(autouse=True)
def _restore_globals(monkeypatch):
    """The hook sets s3fs's class retries and boto3's default session: put them back."""
    monkeypatch.setattr(S3FileSystem, "retries", S3FileSystem.retries)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", boto3.DEFAULT_SESSION)


def _identity(frame):
    return frame


PIPELINE = Pipeline([node(_identity, "raw_manifest", "validated_manifest", name="copy")])


def _catalog(bucket: str, credentials: dict) -> DataCatalog:
    fs_args = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 8,
                                 "retries": {"total_max_attempts": 3, "mode": "adaptive"}}}
    entry = {"credentials": "s3_lake", "fs_args": fs_args}
    return DataCatalog.from_config(
        {
            "raw_manifest": {"type": "pandas.CSVDataset",
                             "filepath": f"s3://{bucket}/lake/01_raw/manifest.csv", **entry},
            "validated_manifest": {"type": "pandas.ParquetDataset",
                                   "filepath": f"s3://{bucket}/lake/02/validated.parquet", **entry},
        },
        {"s3_lake": credentials},
    )


def _refusal(catalog: DataCatalog) -> str:
    with pytest.raises(LakeUnreachableError) as info:
        LakeHooks().before_pipeline_run(RUN_PARAMS, PIPELINE, catalog)
    message = info.value.format_message()
    assert "\n" not in message and "Traceback" not in message
    assert "kedro lake check --env s3" in message
    return message


def test_a_healthy_lake_lets_the_run_start_with_one_retry_layer(lake_server, bucket):
    LakeHooks().before_pipeline_run(
        RUN_PARAMS, PIPELINE, _catalog(bucket, lake_server.storage_options())
    )
    assert S3FileSystem.retries == 1  # botocore's budget alone
    assert boto3.DEFAULT_SESSION is not None  # MLflow's boto3 clients get the same budget


def test_a_closed_port_stops_the_run_naming_the_endpoint(lake_server, bucket, closed_endpoint):
    options = lake_server.storage_options(client_kwargs={"endpoint_url": closed_endpoint})
    start = time.monotonic()
    message = _refusal(_catalog(bucket, options))
    assert time.monotonic() - start < 45
    assert f"cannot connect to {closed_endpoint}" in message
    assert "AWS_ENDPOINT_URL" in message and "dataset 'raw_manifest' and 1 more" in message


def test_a_silent_endpoint_stops_the_run_within_the_check_deadline(
    lake_server, bucket, silent_endpoint
):
    options = lake_server.storage_options(client_kwargs={"endpoint_url": silent_endpoint.url})
    start = time.monotonic()
    message = _refusal(_catalog(bucket, options))
    assert time.monotonic() - start < 45
    assert f"{silent_endpoint.url} accepts connections but sent no answer" in message


def test_a_wrong_key_or_a_missing_bucket_stops_the_run(lake_server, bucket):
    bad_secret = _refusal(_catalog(bucket, lake_server.storage_options(secret="wrong")))
    assert "invalid credentials" in bad_secret and "AWS_SECRET_ACCESS_KEY" in bad_secret
    missing = _refusal(_catalog("no-such-bucket-here", lake_server.storage_options()))
    assert "missing bucket: 'no-such-bucket-here'" in missing


def test_a_run_without_s3_datasets_is_not_checked(tmp_path):
    catalog = DataCatalog.from_config(
        {"raw_manifest": {"type": "pandas.CSVDataset", "filepath": str(tmp_path / "m.csv")}}
    )
    retries = S3FileSystem.retries
    LakeHooks().before_pipeline_run(RUN_PARAMS, PIPELINE, catalog)  # no request, no change
    assert S3FileSystem.retries == retries
