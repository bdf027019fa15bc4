"""The lake health check against a real S3 server: healthy, then each failure and its message."""

from __future__ import annotations

import time

import pytest

from deepfake_kedro.lake import CHECKS, LakeConfig, check_lake, format_results
from deepfake_kedro.lake.health import CHECK_TIMEOUT_S, check_access
from deepfake_kedro.lake.health import CHECKS as HEALTH_CHECKS

MANIFEST = "image_path,label\nimages/a.png,real\nimages/b.png,fake\n"
SOURCES = {
    "endpoint_source": "ENDPOINT-SETTING",
    "credentials_source": "KEY-SETTING",
    "manifest_source": "MANIFEST-SETTING",
}


@pytest.fixture
def lake(lake_server, bucket) -> str:
    """s3://bucket/lake/01_raw with a manifest and its two images."""
    client = lake_server.client()
    client.put_object(Bucket=bucket, Key="lake/01_raw/manifest.csv", Body=MANIFEST.encode())
    for name in ("a", "b"):
        client.put_object(Bucket=bucket, Key=f"lake/01_raw/images/{name}.png", Body=b"png")
    return f"s3://{bucket}/lake/01_raw"


def config(root: str, options: dict, manifest: str = "manifest.csv") -> LakeConfig:
    return LakeConfig(
        manifest_uri=f"{root}/{manifest}", image_root=root, storage_options=options, **SOURCES
    )


def statuses(results) -> dict[str, str]:
    assert [r.name for r in results] == list(CHECKS) == list(HEALTH_CHECKS)
    return {r.name: r.status for r in results}


def failure(results) -> str:
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1, format_results(results)
    assert "Traceback" not in failed[0].message
    return failed[0].message


def test_healthy_lake_passes_every_check(lake_server, lake):
    results = check_lake(config(lake, lake_server.storage_options()))
    assert statuses(results) == dict.fromkeys(CHECKS, "ok"), format_results(results)
    assert "2 rows" in format_results(results)


def test_wrong_endpoint_says_unreachable_and_names_the_setting(lake_server, lake):
    options = lake_server.storage_options(client_kwargs={"endpoint_url": "http://127.0.0.1:9"})
    results = check_lake(config(lake, options))
    message = failure(results)
    assert message.startswith("endpoint unreachable") and "http://127.0.0.1:9" in message
    assert "ENDPOINT-SETTING" in message
    assert statuses(results)["endpoint"] == "failed"
    assert {statuses(results)[n] for n in CHECKS[1:]} == {"skipped"}


@pytest.mark.parametrize("override", [{"key": "AKIANOTAKEY"}, {"secret": "wrong-secret"}])
def test_wrong_key_or_secret_says_invalid_credentials(lake_server, lake, override):
    results = check_lake(config(lake, lake_server.storage_options(**override)))
    message = failure(results)
    assert message.startswith("invalid credentials") and "KEY-SETTING" in message
    assert statuses(results)["endpoint"] == "ok"
    assert statuses(results)["credentials"] == "failed"


def test_missing_bucket_is_named(lake_server, lake):
    results = check_lake(config("s3://no-such-bucket/lake/01_raw", lake_server.storage_options()))
    message = failure(results)
    assert message.startswith("missing bucket") and "'no-such-bucket'" in message
    assert statuses(results)["credentials"] == "ok"


def test_missing_manifest_names_the_object_and_setting(lake_server, lake):
    results = check_lake(config(lake, lake_server.storage_options(), manifest="nope.csv"))
    message = failure(results)
    assert message.startswith("missing manifest") and f"{lake}/nope.csv" in message
    assert "MANIFEST-SETTING" in message
    assert statuses(results)["bucket"] == "ok" and statuses(results)["images"] == "skipped"


def test_manifest_without_image_path_column_fails(lake_server, bucket, lake):
    lake_server.client().put_object(Bucket=bucket, Key="lake/01_raw/bad.csv", Body=b"path\nx\n")
    message = failure(check_lake(config(lake, lake_server.storage_options(), manifest="bad.csv")))
    assert "no image_path column" in message


def test_missing_image_is_reported_with_its_path(lake_server, bucket, lake):
    lake_server.client().delete_object(Bucket=bucket, Key="lake/01_raw/images/b.png")
    message = failure(check_lake(config(lake, lake_server.storage_options())))
    assert "1 of the first 2" in message and "images/b.png" in message


def test_local_manifest_skips_the_s3_checks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"png")
    (tmp_path / "manifest.csv").write_text("image_path,label\nimages/a.png,real\n")
    results = check_lake(LakeConfig(str(tmp_path / "manifest.csv"), str(tmp_path)))
    assert statuses(results) == {
        "endpoint": "skipped",
        "credentials": "skipped",
        "bucket": "skipped",
        "manifest": "ok",
        "images": "ok",
    }


def test_silent_endpoint_fails_within_the_check_deadline(lake_server, silent_endpoint):
    # Accepts the connection, never answers: was 5 minutes (s3fs x botocore retries x 20 s).
    options = lake_server.storage_options(client_kwargs={"endpoint_url": silent_endpoint.url})
    start = time.monotonic()
    results = check_lake(config("s3://lake/raw", options))
    elapsed = time.monotonic() - start
    message = failure(results)
    assert message.startswith("endpoint unreachable") and silent_endpoint.url in message
    assert "sent no answer" in message and "ENDPOINT-SETTING" in message
    assert elapsed < CHECK_TIMEOUT_S + 5, elapsed


def test_check_access_checks_one_bucket(lake_server, bucket, closed_endpoint):
    assert [r.status for r in check_access(f"s3://{bucket}/x", lake_server.storage_options())] == [
        "ok", "ok", "ok"
    ]
    refused = check_access(
        f"s3://{bucket}/x",
        lake_server.storage_options(client_kwargs={"endpoint_url": closed_endpoint}),
        endpoint_source="THE-SETTING",
    )
    assert [r.status for r in refused] == ["failed"]
    assert refused[0].message.startswith(f"endpoint unreachable: cannot connect to {closed_endpoint}")
    assert "THE-SETTING" in refused[0].message
