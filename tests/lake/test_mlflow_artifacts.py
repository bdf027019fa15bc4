"""Files saved on S3 are logged to MLflow, and land in an S3 artifact store."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from deepfake_kedro.datasets.mlflow_artifact import MlflowRemoteArtifactDataset


def _report(bucket: str, creds: dict) -> MlflowRemoteArtifactDataset:
    return MlflowRemoteArtifactDataset(
        artifact_path="validation",
        dataset={
            "type": "json.JSONDataset",
            "filepath": f"s3://{bucket}/08_reporting/verdict.json",
            "credentials": creds,
        },
    )


def test_file_saved_on_s3_is_logged_to_the_s3_artifact_store(
    lake_server, bucket, tmp_path, monkeypatch
):
    for name, value in lake_server.env().items():  # MLflow's own boto3 client reads these
        monkeypatch.setenv(name, value)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    dataset = _report(bucket, lake_server.storage_options())
    try:
        experiment = mlflow.create_experiment("s3", artifact_location=f"s3://{bucket}/mlartifacts")
        with mlflow.start_run(experiment_id=experiment) as run:
            dataset.save({"passed": True})
        artifacts = MlflowClient().list_artifacts(run.info.run_id, "validation")
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
    assert dataset.load() == {"passed": True}

    keys = {o["Key"] for o in lake_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert "08_reporting/verdict.json" in keys
    assert f"mlartifacts/{run.info.run_id}/artifacts/validation/verdict.json" in keys
    assert [a.path for a in artifacts] == ["validation/verdict.json"]


def test_local_file_is_logged_and_no_run_means_no_logging(mlflow_tracking, tmp_path):
    dataset = MlflowRemoteArtifactDataset(
        artifact_path="reports",
        dataset={"type": "text.TextDataset", "filepath": str(tmp_path / "r.html")},
    )
    dataset.save("<p>no run</p>")  # no active run: saved, not logged
    assert dataset.load() == "<p>no run</p>"
    with mlflow.start_run() as run:
        dataset.save("<p>ok</p>")
    assert [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "reports")] == [
        "reports/r.html"
    ]


def test_dataset_without_a_single_file_is_refused(mlflow_tracking):
    dataset = MlflowRemoteArtifactDataset(dataset={"type": "MemoryDataset"})
    with mlflow.start_run(), pytest.raises(Exception, match="one file through fsspec"):
        dataset.save(1)
