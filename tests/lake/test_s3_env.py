"""`kedro run --env s3` end to end against a real S3 server (moto), through the real CLI.

Demo data is generated locally and uploaded (as a user would upload theirs); the pipelines
then read and write only the bucket: nothing lands under the project's data/ folder, and
MLflow's artifacts go to the experiment's s3:// artifact location. The default pipeline
(ingestion through registration, with relaxed gates) registers a version; that model loads
from its own artifacts without the lake, scores s3:// images where the caller has the lake,
and batch scoring writes its scores to the lake.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from kedro_project import OPEN_GATE, demo_images, env, kedro, make_project, tiny_parameters
from mlflow.tracking import MlflowClient

PREFIX = "team/deepfakes"
MODEL_NAME = "deepfake-detector"
# 40 images train no good model: every gate open so that the run registers a version.
PARAMETERS = tiny_parameters(OPEN_GATE, {
    "data_ingestion": {"num_workers": 4},
    "ensemble_training": {"epochs": 4, "patience": 2},
    "validation": {"robustness": {
        "max_images": 4,
        "perturbations": {"jpeg": [50], "blur": [1.0], "noise": [5], "rescale": [0.5],
                          "contrast": [0.5], "saturation": [0.0]},
    }},
})
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake_bucket(lake_server) -> str:
    name = "deepfake-lake-e2e"
    lake_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def lake_env(lake_server, lake_bucket) -> dict[str, str]:
    environ = env(
        **lake_server.env(), DEEPFAKE_LAKE_BUCKET=lake_bucket, DEEPFAKE_LAKE_PREFIX=PREFIX
    )
    environ.pop("MLFLOW_S3_ENDPOINT_URL", None)  # AWS_ENDPOINT_URL alone must do for MLflow too
    return environ


@pytest.fixture(scope="module")
def project(tmp_path_factory, lake_server, lake_bucket) -> Path:
    """A project copy without data/, and 40 demo images uploaded under <prefix>/01_raw."""
    # conf/local is not read with --env s3, so the tiny overrides go to the copy's conf/s3.
    path = make_project(tmp_path_factory.mktemp("s3_project"), PARAMETERS, env="s3",
                        data_layers=False)

    demo = demo_images(tmp_path_factory.mktemp("demo"))
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
    lake_check = (project, "lake", "check", "--env", "s3")
    result = kedro(*lake_check, check=False, environ=lake_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy" in result.stdout and "40 rows" in result.stdout

    bad_key = kedro(*lake_check, check=False, environ={**lake_env, "AWS_SECRET_ACCESS_KEY": "wrong"})
    assert bad_key.returncode == 1
    assert "invalid credentials" in bad_key.stdout and "AWS_SECRET_ACCESS_KEY" in bad_key.stdout

    bad_endpoint = kedro(
        *lake_check, check=False, environ={**lake_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    )
    assert bad_endpoint.returncode == 1
    assert "endpoint unreachable" in bad_endpoint.stdout
    assert "AWS_ENDPOINT_URL" in bad_endpoint.stdout
    for result in (bad_key, bad_endpoint):
        assert "Traceback" not in result.stdout + result.stderr


def _local_data(project: Path) -> list[str]:
    """Files under the project's data/ other than the project lock (which is local by design:
    docs/s3.md, What is not in the lake)."""
    data = project / "data"
    files = [str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()]
    return [f for f in files if not f.startswith("09_scheduler/project.lock")]


def _lake_keys(lake_server, bucket: str) -> set[str]:
    client = lake_server.client()
    return {
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    }


@pytest.fixture(scope="module")
def default_run(project, lake_env) -> subprocess.CompletedProcess:
    """`kedro run --env s3`: ingestion through registration."""
    result = kedro(project, "run", "--env", "s3", check=False, environ=lake_env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="module")
def registered_version(project, default_run):
    tracking = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    versions = tracking.search_model_versions(f"name='{MODEL_NAME}'")
    assert len(versions) == 1, versions
    return tracking.get_model_version(MODEL_NAME, versions[0].version)  # with its aliases


def test_default_pipeline_reads_and_writes_the_lake(project, default_run, lake_server, lake_bucket):
    assert _local_data(project) == []  # nothing was written locally

    client = lake_server.client()
    keys = _lake_keys(lake_server, lake_bucket)
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
        "08_reporting/validation_results.json",
        "08_reporting/validation_report.html",
        "08_reporting/registration/champion_evaluation.json",
        "08_reporting/registration/registration_request.json",
        "08_reporting/registration/registration_result.json",
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

    def lake_json(key: str) -> dict:
        return json.loads(
            client.get_object(Bucket=lake_bucket, Key=f"{PREFIX}/{key}")["Body"].read()
        )

    verdict = lake_json("08_reporting/validation_verdict.json")
    assert verdict["passed"] is True
    registration = lake_json("08_reporting/registration/registration_result.json")
    assert registration["registered"] and registration["promoted"], registration

    # MLflow: tracking in the project's SQLite store, artifacts in the lake.
    tracking = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = tracking.get_experiment_by_name("deepfake_kedro_s3")
    assert experiment.artifact_location == f"s3://{lake_bucket}/{PREFIX}/mlartifacts"
    run = tracking.get_run(registration["run_id"])
    assert run.info.artifact_uri.startswith(f"s3://{lake_bucket}/{PREFIX}/mlartifacts/")
    assert run.data.metrics["validation.gate_passed"] == 1.0
    artifacts = run.info.artifact_uri.removeprefix(f"s3://{lake_bucket}/")
    for name in (
        "checkpoint/fusion_checkpoint.pt",  # where retraining looks for the champion's
        "data/split_manifest.parquet",  # and its training data
        "training/training_curves.png",
        "validation/validation_report.html",
        "validation/validation_results.json",
        "data_quality/data_quality_report.json",
        "feature_extraction/resnet.json",
        "registration/registration_request.json",
        "registration/registration_result.json",
    ):
        assert f"{artifacts}/{name}" in keys, name
    assert not (project / "mlartifacts").exists()


# Run in a process of its own: the model loads from a local copy while the lake is
# unreachable, then scores s3:// images once the caller's environment reaches the lake.
SCORE_SCRIPT = """
import json, os, sys
import mlflow, pandas as pd
args = json.load(open(sys.argv[1]))
model = mlflow.pyfunc.load_model(args["model_dir"])
inline = model.predict(pd.DataFrame({"image_id": ["inline"], "image_bytes": [args["image_b64"]]}))
os.environ.update(args["lake_env"])
remote = model.predict(pd.DataFrame({"image_path": args["uris"]}))
print("RESULT " + json.dumps({"inline": inline.to_dict("records"),
                              "remote": remote.to_dict("records")}))
"""


def test_registered_model_needs_no_lake_to_load_and_scores_s3_images(
    project, lake_env, lake_server, lake_bucket, registered_version, tmp_path
):
    version = registered_version
    assert version.tags["validation_passed"] == "true"
    assert "champion" in version.aliases
    assert version.source.startswith(f"s3://{lake_bucket}/{PREFIX}/mlartifacts/") or (
        version.source.startswith("models:/")
    )

    # Download the registered model from the lake (MLflow reads the AWS_* variables).
    model_dir = tmp_path / "model"
    download = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, mlflow; mlflow.artifacts.download_artifacts("
            "artifact_uri=sys.argv[1], dst_path=sys.argv[2])",
            f"models:/{MODEL_NAME}/{version.version}",
            str(model_dir),
        ],
        env={**lake_env, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert download.returncode == 0, download.stderr[-3000:]
    artifacts = {p.name for p in (model_dir / "artifacts").iterdir()}
    assert {"fusion_checkpoint.pt", "validation_results.json"} <= artifacts, artifacts
    for path in model_dir.rglob("*"):  # the packaged catalog holds no credentials
        if path.is_file():
            assert lake_server.secret.encode() not in path.read_bytes(), path

    images = [
        f"{PREFIX}/01_raw/images/src_000000/real.png",
        f"{PREFIX}/01_raw/images/src_000001/real.png",
    ]
    client = lake_server.client()
    image = client.get_object(Bucket=lake_bucket, Key=images[0])["Body"].read()
    args = tmp_path / "args.json"
    args.write_text(
        json.dumps(
            {
                "model_dir": str(model_dir),
                "image_b64": base64.b64encode(image).decode(),
                "uris": [f"s3://{lake_bucket}/{key}" for key in images],
                "lake_env": lake_server.env(),
            }
        )
    )
    no_lake = {k: v for k, v in lake_env.items() if not k.startswith("AWS_")}
    no_lake["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens there
    scored = subprocess.run(
        [sys.executable, "-c", SCORE_SCRIPT, str(args)],
        cwd=tmp_path,
        env=no_lake,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    line = next(s for s in scored.stdout.splitlines() if s.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    inline, remote = result["inline"], result["remote"]
    assert inline[0]["error"] is None and 0 <= inline[0]["fake_probability"] <= 1
    assert [r["image_path"] for r in remote] == [f"s3://{lake_bucket}/{key}" for key in images]
    for row in remote:
        assert row["error"] is None, row
        assert 0 <= row["fake_probability"] <= 1 and row["prediction"] in ("real", "fake")
    # The same image, inline or from the lake, gets the same score.
    assert abs(remote[0]["fake_probability"] - inline[0]["fake_probability"]) < 1e-6


def test_batch_scoring_reads_a_lake_folder_and_writes_scores_to_the_lake(
    project, lake_env, lake_server, lake_bucket, registered_version
):
    folder = f"s3://{lake_bucket}/{PREFIX}/01_raw/images/src_000000"
    result = kedro(
        project,
        "run",
        "--env",
        "s3",
        "--pipelines",
        "inference",
        "--params",
        f"inference_input={folder}",
        check=False,
        environ=lake_env,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]

    body = (
        lake_server.client()
        .get_object(Bucket=lake_bucket, Key=f"{PREFIX}/07_model_output/batch_scores.parquet")[
            "Body"
        ]
        .read()
    )
    scores = pd.read_parquet(io.BytesIO(body))
    assert len(scores) >= 1
    assert scores["image_path"].str.startswith(f"{folder}/").all()
    assert scores["error"].isna().all() and scores["fake_probability"].between(0, 1).all()
    assert (scores["model_version"] == str(registered_version.version)).all()
    assert (scores["model_name"] == MODEL_NAME).all()
    assert _local_data(project) == []
