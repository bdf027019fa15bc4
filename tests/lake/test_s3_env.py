"""`kedro run --env s3` end to end against a real S3 server (moto), through the real CLI.

Demo data is generated locally and uploaded (as a user would upload theirs); the pipelines
then read and write only the bucket: nothing lands under the project's data/ folder, and
MLflow's artifacts go to the experiment's s3:// artifact location.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "team/deepfakes"
PIPELINES = "data_ingestion,feature_extraction,ensemble_training,validation"
# conf/local is not read with --env s3, so the tiny overrides go to the copy's conf/s3.
TINY_PARAMETERS = """
data_ingestion: {min_group_size: 2, num_workers: 4}
feature_extraction:
  backbones:
    resnet: {arch: resnet18, image_size: 64}
    clip: {image_size: 64}
    spectral: {image_size: 64}
  runtime: {batch_size: 16, num_workers: 0, progress: false}
ensemble_training: {epochs: 4, patience: 2, batch_size: 16}
validation:
  bootstrap_samples: 100
  min_group_size: 3
  robustness:
    max_images: 4
    perturbations: {jpeg: [50], blur: [1.0], noise: [5], rescale: [0.5], contrast: [0.5],
                    saturation: [0.0]}
"""
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake_bucket(lake_server) -> str:
    name = "deepfake-lake-e2e"
    lake_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def lake_env(lake_server, lake_bucket) -> dict[str, str]:
    env = {
        **os.environ,
        **lake_server.env(),
        "DO_NOT_TRACK": "1",
        "KEDRO_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",
        "DEEPFAKE_LAKE_BUCKET": lake_bucket,
        "DEEPFAKE_LAKE_PREFIX": PREFIX,
    }
    env.pop("KEDRO_LOGGING_CONFIG", None)
    env.pop("MLFLOW_S3_ENDPOINT_URL", None)  # AWS_ENDPOINT_URL alone must do for MLflow too
    return env


def kedro(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory, lake_server, lake_bucket) -> Path:
    """A project copy without data/, and 40 demo images uploaded under <prefix>/01_raw."""
    path = tmp_path_factory.mktemp("s3_project")
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "s3" / "parameters.yml").write_text(TINY_PARAMETERS)
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    (path / "src").mkdir()  # the package itself is installed (editable) in the venv
    if (ROOT / ".telemetry").exists():
        shutil.copy(ROOT / ".telemetry", path / ".telemetry")

    demo = tmp_path_factory.mktemp("demo")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfake_kedro.demo",
            "--out",
            str(demo),
            "--n-images",
            "40",
            "--image-size",
            "64",
            "--seed",
            "3",
            "--no-progress",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    client = lake_server.client()
    manifest = pd.read_csv(demo / "manifest.csv")
    for image in manifest["image_path"]:
        client.upload_file(str(demo / image), lake_bucket, f"{PREFIX}/01_raw/{image}")
    # Some rows name their image by absolute URI (same bucket): allowed next to relative ones.
    manifest.loc[:4, "image_path"] = [
        f"s3://{lake_bucket}/{PREFIX}/01_raw/{p}" for p in manifest.loc[:4, "image_path"]
    ]
    client.put_object(
        Bucket=lake_bucket,
        Key=f"{PREFIX}/01_raw/manifest.csv",
        Body=manifest.to_csv(index=False).encode(),
    )
    return path


def test_lake_check_passes_then_names_a_wrong_key_and_endpoint(project, lake_env):
    result = kedro(project, lake_env, "lake", "check", "--env", "s3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy" in result.stdout and "40 rows" in result.stdout

    bad_key = kedro(
        project, {**lake_env, "AWS_SECRET_ACCESS_KEY": "wrong"}, "lake", "check", "--env", "s3"
    )
    assert bad_key.returncode == 1
    assert "invalid credentials" in bad_key.stdout and "AWS_SECRET_ACCESS_KEY" in bad_key.stdout

    bad_endpoint = kedro(
        project,
        {**lake_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        "lake",
        "check",
        "--env",
        "s3",
    )
    assert bad_endpoint.returncode == 1
    assert "endpoint unreachable" in bad_endpoint.stdout
    assert "AWS_ENDPOINT_URL" in bad_endpoint.stdout
    for result in (bad_key, bad_endpoint):
        assert "Traceback" not in result.stdout + result.stderr


def test_training_through_validation_reads_and_writes_the_lake(
    project, lake_env, lake_server, lake_bucket
):
    result = kedro(project, lake_env, "run", "--env", "s3", "--pipelines", PIPELINES)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert not (project / "data").exists()  # nothing was written locally

    client = lake_server.client()
    keys = {
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=lake_bucket)
        for obj in page.get("Contents", [])
    }
    lake = {k.removeprefix(f"{PREFIX}/") for k in keys if k.startswith(f"{PREFIX}/")}
    assert {
        "02_intermediate/validated_manifest.parquet",
        "03_primary/split_manifest.parquet",
        "03_primary/dataset_fingerprint.json",
        "05_model_input/resnet_features.npz",
        "06_models/fusion_checkpoint.pt",
        "06_models/training_state.pt",
        "07_model_output/model_scores.parquet",
        "08_reporting/data_quality_report.json",
        "08_reporting/training_curves.png",
        "08_reporting/validation_verdict.json",
        "08_reporting/validation_report.html",
    } <= lake
    for branch in ("resnet", "clip", "spectral"):
        shards = [k for k in lake if k.startswith(f"04_feature/{branch}/") and "/shard-" in k]
        assert shards, f"no feature cache shards for {branch}"

    body = client.get_object(Bucket=lake_bucket, Key=f"{PREFIX}/03_primary/split_manifest.parquet")
    split = pd.read_parquet(io.BytesIO(body["Body"].read()))
    assert len(split) == 40 and split["image_path"].str.startswith("s3://").sum() == 5
    checkpoint = torch.load(
        io.BytesIO(
            client.get_object(Bucket=lake_bucket, Key=f"{PREFIX}/06_models/fusion_checkpoint.pt")[
                "Body"
            ].read()
        ),
        weights_only=True,
    )
    assert set(checkpoint["backbones"]) == {"resnet", "clip", "spectral"}
    verdict = json.loads(
        client.get_object(Bucket=lake_bucket, Key=f"{PREFIX}/08_reporting/validation_verdict.json")[
            "Body"
        ].read()
    )
    assert isinstance(verdict["passed"], bool)

    # MLflow: tracking in the project's SQLite store, artifacts in the lake.
    tracking = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = tracking.get_experiment_by_name("deepfake_kedro_s3")
    assert experiment.artifact_location == f"s3://{lake_bucket}/{PREFIX}/mlartifacts"
    run = tracking.search_runs([experiment.experiment_id])[0]
    assert run.info.artifact_uri.startswith(f"s3://{lake_bucket}/{PREFIX}/mlartifacts/")
    assert run.data.metrics["validation.gate_passed"] == float(verdict["passed"])
    artifacts = run.info.artifact_uri.removeprefix(f"s3://{lake_bucket}/")
    for name in (
        "model/fusion_checkpoint.pt",
        "training/training_curves.png",
        "validation/validation_report.html",
        "data_quality/data_quality_report.json",
        "feature_extraction/resnet.json",
    ):
        assert f"{artifacts}/{name}" in keys, name
    assert not (project / "mlartifacts").exists()
