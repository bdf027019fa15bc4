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


def _checkpoint(bucket: str, creds: dict) -> MlflowRemoteArtifactDataset:
    return MlflowRemoteArtifactDataset(
        artifact_path="checkpoint",
        dataset={
            "type": "deepfake_kedro.datasets.TorchCheckpointDataset",
            "filepath": f"s3://{bucket}/06_models/fusion_checkpoint.pt",
            "credentials": creds,
        },
    )


def test_lake_file_packaged_by_kedro_mlflow_loads_from_its_local_copy_without_the_lake(
    lake_server, bucket, tmp_path, monkeypatch
):
    """What pipeline_ml_factory does with an inference input: package `_filepath` (a local
    file), pickle the dataset into the model, then point `_filepath` at the model's copy."""
    import cloudpickle
    import torch

    dataset = _checkpoint(bucket, lake_server.storage_options())
    dataset.save({"epoch": 3})  # no run: saved to the lake only
    staged = dataset._filepath
    assert staged.name == "fusion_checkpoint.pt"  # the artifact keeps the lake file's name
    assert torch.load(staged.as_posix(), weights_only=True) == {"epoch": 3}

    dataset.save({"epoch": 4})  # a new value: the next packaging stages it again
    assert torch.load(dataset._filepath.as_posix(), weights_only=True) == {"epoch": 4}

    pickled = cloudpickle.dumps(dataset)
    assert lake_server.secret.encode() not in pickled and lake_server.key.encode() not in pickled

    packaged = tmp_path / "artifacts" / "fusion_checkpoint.pt"
    packaged.parent.mkdir()
    torch.save({"epoch": 9}, packaged)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # no lake from here on
    in_model = cloudpickle.loads(pickled)
    in_model._filepath = packaged  # kedro-mlflow's load_context
    assert in_model.load() == {"epoch": 9}
    assert in_model.exists()


def test_local_file_is_its_own_filepath(tmp_path):
    dataset = MlflowRemoteArtifactDataset(
        dataset={"type": "json.JSONDataset", "filepath": str(tmp_path / "results.json")}
    )
    dataset.save({"threshold": 0.4})
    assert dataset._filepath.as_posix() == (tmp_path / "results.json").as_posix()
