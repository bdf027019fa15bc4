"""Log a file dataset that lives anywhere fsspec reaches (``s3://...``) as an MLflow artifact.

kedro-mlflow's ``MlflowArtifactDataset`` logs the wrapped dataset's ``_filepath`` as a local
file, which breaks when that path is on S3 (the protocol is stripped and nothing is on local
disk). The ``s3`` environment uses this dataset instead: the file is saved where the catalog
says (the data lake), then copied into the active run's artifact store (S3 as well when the
experiment's ``artifact_location`` is ``s3://``).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

import fsspec
import mlflow
from fsspec.implementations.local import LocalFileSystem
from kedro.io import AbstractDataset, DatasetError


class MlflowRemoteArtifactDataset(AbstractDataset[Any, Any]):
    """Save through a wrapped file dataset, then log the saved file to the active MLflow run.

    Catalog entry (same shape as kedro-mlflow's ``MlflowArtifactDataset``)::

        validation_report:
          type: deepfake_kedro.datasets.mlflow_artifact.MlflowRemoteArtifactDataset
          artifact_path: validation
          dataset:
            type: text.TextDataset
            filepath: s3://my-bucket/deepfakes/08_reporting/validation_report.html
            credentials: s3_lake

    With no active run (tracking disabled, a unit test) the file is saved and logging is
    skipped with a log line, as :class:`MlflowTagsDataset` does for tags.

    Args:
        dataset: Config of the wrapped dataset (``type`` plus its arguments); it must save one
            file (kedro-datasets file datasets or the project's fsspec datasets).
        artifact_path: Folder of the artifact in the run (``None``: the run's root).
        metadata: Free-form metadata (Kedro-Viz layer).
    """

    def __init__(
        self,
        *,
        dataset: dict[str, Any],
        artifact_path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._dataset = AbstractDataset.from_config("mlflow_remote_artifact", dict(dataset))
        self._artifact_path = artifact_path
        self.metadata = metadata

    def load(self) -> Any:
        return self._dataset.load()

    def save(self, data: Any) -> None:
        self._dataset.save(data)
        if mlflow.active_run() is None:
            self._logger.info("No active MLflow run: %s saved but not logged", self._dataset)
            return
        fs, path = saved_file(self._dataset)
        if isinstance(fs, LocalFileSystem):
            mlflow.log_artifact(path, self._artifact_path)
            return
        with tempfile.TemporaryDirectory(prefix="mlflow-artifact-") as tmp:
            local = os.path.join(tmp, posixpath.basename(path.rstrip("/")))
            fs.get_file(path, local)
            mlflow.log_artifact(local, self._artifact_path)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe(), "artifact_path": self._artifact_path}


def saved_file(dataset: AbstractDataset) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of the one file a dataset saves.

    Raises:
        DatasetError: if the dataset is not a single-file fsspec dataset.
    """
    fs = getattr(dataset, "_fs", None)
    if isinstance(fs, fsspec.AbstractFileSystem):  # kedro-datasets file datasets
        versioned = getattr(dataset, "_version", None) is not None
        path = dataset._get_save_path() if versioned else getattr(dataset, "_filepath", None)
        if path is not None:
            return fs, str(path)
    elif callable(fs):  # deepfake_kedro.datasets.base.FsspecDataset
        return fs()
    raise DatasetError(
        f"MlflowRemoteArtifactDataset cannot log {type(dataset).__name__}: it needs a dataset "
        "that saves one file through fsspec (filepath: ...). Wrap it with kedro-mlflow's "
        "MlflowArtifactDataset instead if it writes a local folder."
    )
