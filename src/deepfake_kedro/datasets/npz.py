"""A dict of NumPy arrays as one ``.npz`` file (local or fsspec)."""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from deepfake_kedro.datasets.base import FsspecDataset


class NpzDataset(FsspecDataset):
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
        super().__init__(filepath, credentials, fs_args, metadata)

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
