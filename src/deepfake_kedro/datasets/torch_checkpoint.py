"""Torch checkpoints (plain dicts of tensors and config) on local disk or any fsspec store."""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from kedro.io import DatasetError

from deepfake_kedro.datasets.base import FsspecDataset, HandleDataset
from deepfake_kedro.training.checkpoint import upgrade


def _fs(filepath: str, storage_options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(filepath, **storage_options)


def read_checkpoint(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any]:
    """The dict saved at ``path``, loaded with ``weights_only=True`` (no arbitrary code from
    the file). A fusion checkpoint (it has a ``format_version``) comes back in the current
    format (:func:`deepfake_kedro.training.checkpoint.upgrade`), so old ones keep loading."""
    with fs.open(path, "rb") as handle:
        data = torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=True)
    return upgrade(data) if isinstance(data, dict) and "format_version" in data else data


def write_checkpoint(fs: fsspec.AbstractFileSystem, path: str, checkpoint: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint behind."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    parent = str(PurePosixPath(path).parent)
    fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        tmp = f"{path}.tmp"
        with fs.open(tmp, "wb") as handle:
            handle.write(buffer.getvalue())
        fs.mv(tmp, path)
    else:  # object stores: a single PUT is atomic
        fs.pipe_file(path, buffer.getvalue())


class TorchCheckpointDataset(FsspecDataset):
    """A checkpoint dict saved with ``torch.save`` and loaded with ``weights_only=True``.

    Args:
        filepath: Local path or URI of the ``.pt`` file.
        model_uri: When set (``models:/<name>/<version>`` or ``@<alias>``), ``load`` returns
            the checkpoint packaged in that registered version instead of the file, and
            ``save`` refuses: this is how the validation pipeline validates a registered
            version (``--params model_uri=...``). Empty or ``None``: the file.
        credentials: fsspec credentials, merged into fs_args.
        fs_args: Extra fsspec storage options.
        metadata: Free-form metadata (Kedro-Viz layer).
    """

    def __init__(
        self,
        *,
        filepath: str,
        model_uri: str | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath, credentials, fs_args, metadata)
        self._model_uri = str(model_uri).strip() if model_uri else None
        if self._model_uri:
            from deepfake_kedro.datasets.registered_model import parse_registry_uri

            parse_registry_uri(self._model_uri)  # a bad URI fails when the catalog is built

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Registered models pickle this dataset; one registered before model_uri existed
        # must still load in a process that runs today's code.
        self.__dict__.update(state)
        self.__dict__.setdefault("_model_uri", None)
        self.__dict__.pop("_filepath", None)  # now a property over _location

    @property
    def _filepath(self) -> PurePosixPath:
        """The file, as kedro-datasets' datasets expose it.

        kedro-mlflow reads it to log the file after a save, and *assigns* it when a
        registered model loads, to point the dataset at the model's own copy of the file:
        assigning moves the dataset there, so a loaded model never reads the project's file.
        """
        return PurePosixPath(self._fs()[1])

    @_filepath.setter
    def _filepath(self, value: Any) -> None:
        location = str(value)
        if "://" not in location:  # a local copy: the remote store's options do not apply
            self._storage_options = {}
        self._location = location

    def load(self) -> dict:
        if self._model_uri:
            from deepfake_kedro.datasets.registered_model import load_registered_checkpoint

            return load_registered_checkpoint(self._model_uri)
        fs, path = self._fs()
        if not fs.exists(path):
            raise DatasetError(
                f"No checkpoint at {self._location}: run the ensemble_training pipeline first."
            )
        return read_checkpoint(fs, path)

    def save(self, data: dict) -> None:
        if self._model_uri:
            raise DatasetError(
                f"model_uri={self._model_uri} selects a registered version to validate or "
                "score; it cannot be combined with training, which writes a new checkpoint. "
                "Run `kedro run --pipelines validation --params model_uri=...` to validate a "
                "registered version, or drop model_uri to train"
            )
        write_checkpoint(*self._fs(), data)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._location, "model_uri": self._model_uri}

    def _exists(self) -> bool:
        if self._model_uri:
            return True
        fs, path = self._fs()
        return fs.exists(path)


class CheckpointStore:
    """Handle a node uses to persist training state every epoch and to resume from it."""

    def __init__(self, filepath: str, storage_options: dict[str, Any] | None = None) -> None:
        self.filepath = str(filepath)
        self.storage_options = dict(storage_options or {})

    def __repr__(self) -> str:
        return f"CheckpointStore({self.filepath!r})"

    def load(self) -> dict | None:
        """The last saved state, or None if there is none."""
        fs, path = _fs(self.filepath, self.storage_options)
        return read_checkpoint(fs, path) if fs.exists(path) else None

    def save(self, checkpoint: dict) -> None:
        write_checkpoint(*_fs(self.filepath, self.storage_options), checkpoint)


class CheckpointStoreDataset(HandleDataset[CheckpointStore]):
    """Loads a :class:`CheckpointStore`: training writes through it after every epoch.

    A node cannot take a dataset as input and output at once, and a training run must be
    able to save state while it runs (so an interrupted run resumes), hence a handle.
    """

    write_hint = "the training state is written through the CheckpointStore handle it loads"

    def __init__(
        self,
        *,
        filepath: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path=filepath, credentials=credentials, fs_args=fs_args, metadata=metadata)

    def load(self) -> CheckpointStore:
        return CheckpointStore(self._location, self._storage_options)

    def _exists(self) -> bool:
        return True
