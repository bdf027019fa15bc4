"""A dict of NumPy arrays as one ``.npz`` file (local or fsspec)."""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io import AbstractDataset


class NpzDataset(AbstractDataset[dict, dict]):
    """``{name: array}`` saved with ``np.savez`` (uncompressed: features barely compress).

    Loading never unpickles objects (``allow_pickle=False``): store strings as unicode arrays.
    """

    def __init__(
        self,
        *,
        filepath: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = str(filepath)
        self._storage_options = {**(fs_args or {}), **(credentials or {})}
        self.metadata = metadata

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self._filepath, **self._storage_options)

    def load(self) -> dict[str, np.ndarray]:
        fs, path = self._fs()
        with fs.open(path, "rb") as handle:
            with np.load(io.BytesIO(handle.read()), allow_pickle=False) as data:
                return {name: data[name] for name in data.files}

    def save(self, data: dict[str, np.ndarray]) -> None:
        fs, path = self._fs()
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(value) for name, value in data.items()})
        fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
        fs.pipe_file(path, buffer.getvalue())

    def _exists(self) -> bool:
        fs, path = self._fs()
        return fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}
