"""Log a file dataset that lives anywhere fsspec reaches (``s3://...``) as an MLflow artifact.

kedro-mlflow's ``MlflowArtifactDataset`` logs the wrapped dataset's ``_filepath`` as a local
file, which breaks when that path is on S3 (the protocol is stripped and nothing is on local
disk). The ``s3`` environment uses this dataset instead: the file is saved where the catalog
says (the data lake), then copied into the active run's artifact store (S3 as well when the
experiment's ``artifact_location`` is ``s3://``).

The same dataset can be an input of the inference pipeline that ``pipeline_ml_factory``
packages as the run's MLflow model (``fusion_checkpoint``, ``validation_results``).
kedro-mlflow packages such inputs from ``dataset._filepath`` (a local file) and, when the
model loads, points ``_filepath`` at the model's own copy and calls ``load()``. Here
``_filepath`` is a local staging copy of the lake file while the run lives, and once
kedro-mlflow sets it, ``load()`` reads that file with no lake access; the pickled copy inside
the model keeps no credentials.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import PurePosixPath
from typing import Any

import fsspec
import mlflow
from fsspec.implementations.local import LocalFileSystem
from kedro.io import AbstractDataset, DatasetError

# Keys of the wrapped dataset's config that only concern reaching the lake.
_LAKE_ONLY_KEYS = ("credentials", "fs_args")


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

    As an input of a model packaged by kedro-mlflow's ``pipeline_ml_factory``:

    - ``_filepath`` (read by kedro-mlflow when it logs the model) is a local file: the
      wrapped file itself when it is local, else a staging copy of the lake file in a
      temporary folder (the copy made to log it on save, or downloaded on first use, so
      ``kedro run --pipelines registration`` packages the lake's current file).
    - Setting ``_filepath`` (kedro-mlflow does when the model loads) makes ``load()`` read
      that local file with the wrapped dataset's type and load arguments, without the lake.
    - A pickled or copied instance drops the credentials and the lake connection; it reaches
      the lake again, if asked to, through the environment's credentials (``AWS_*``).

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
        self._config = dict(dataset)
        self._lake: AbstractDataset | None = AbstractDataset.from_config(
            "mlflow_remote_artifact", dict(dataset)
        )
        self._artifact_path = artifact_path
        self.metadata = metadata
        self._local_file: str | None = None  # set by kedro-mlflow when the model loads
        self._staging: tempfile.TemporaryDirectory | None = None
        self._staged: str | None = None

    @property
    def _dataset(self) -> AbstractDataset:
        """The wrapped dataset on the lake (rebuilt without credentials after unpickling)."""
        if self._lake is None:
            self._lake = AbstractDataset.from_config("mlflow_remote_artifact", dict(self._config))
        return self._lake

    @property
    def _filepath(self) -> PurePosixPath:
        """A local file holding the dataset's data, for kedro-mlflow's model packaging."""
        if self._local_file is not None:
            return PurePosixPath(self._local_file)
        fs, path = saved_file(self._dataset)
        if isinstance(fs, LocalFileSystem):
            return PurePosixPath(path)
        if self._staged is None or not os.path.isfile(self._staged):
            self._stage(fs, path)
        return PurePosixPath(self._staged)

    @_filepath.setter
    def _filepath(self, value: Any) -> None:
        self._local_file = PurePosixPath(value).as_posix() if value is not None else None

    def load(self) -> Any:
        if self._local_file is None:
            return self._dataset.load()
        local = {k: v for k, v in self._config.items() if k not in _LAKE_ONLY_KEYS}
        local["filepath"] = self._local_file
        return AbstractDataset.from_config("mlflow_remote_artifact_local", local).load()

    def save(self, data: Any) -> None:
        self._local_file = None  # a new value lives in the lake, not in an older local copy
        self._staged = None
        self._dataset.save(data)
        if mlflow.active_run() is None:
            self._logger.info("No active MLflow run: %s saved but not logged", self._dataset)
            return
        mlflow.log_artifact(self._filepath.as_posix(), self._artifact_path)

    def _stage(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        if self._staging is None:
            self._staging = tempfile.TemporaryDirectory(prefix="mlflow-artifact-")
        # The lake file's name, so the artifact keeps it (fusion_checkpoint.pt, ...).
        local = os.path.join(self._staging.name, posixpath.basename(path.rstrip("/")))
        fs.get_file(path, local)
        self._staged = local

    def __getstate__(self) -> dict[str, Any]:
        # The packaged MLflow model pickles this dataset: no secret and no connection in it.
        state = self.__dict__.copy()
        config = {k: v for k, v in self._config.items() if k != "credentials"}
        state["_config"] = config
        if isinstance(state.get("_init_args"), dict):  # Kedro keeps the arguments (to_config)
            state["_init_args"] = {**state["_init_args"], "dataset": config}
        state["_lake"] = None
        state["_staging"] = None
        state["_staged"] = None
        return state

    def _exists(self) -> bool:
        if self._local_file is not None:
            return os.path.isfile(self._local_file)
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
