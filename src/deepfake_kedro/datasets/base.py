"""Shared plumbing of the project's fsspec-backed datasets (local paths, ``s3://``, ...)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import fsspec
from kedro.io import AbstractDataset, DatasetError

_Load = TypeVar("_Load")


class FsspecDataset(AbstractDataset[Any, Any]):
    """Holds a location and its storage options (``credentials`` merged into ``fs_args``)."""

    def __init__(
        self,
        location: str,
        credentials: dict[str, Any] | None,
        fs_args: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
    ) -> None:
        self._location = str(location)
        self._storage_options = {**(fs_args or {}), **(credentials or {})}
        self.metadata = metadata

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self._location, **self._storage_options)

    def _describe(self) -> dict[str, Any]:  # never the storage options: they hold secrets
        return {"path": self._location}


class HandleDataset(FsspecDataset, Generic[_Load]):
    """A read-only dataset whose ``load()`` returns a handle that nodes read and write through.

    Used where a node must stream data in or out while it runs (images, the feature cache,
    per-epoch training state), which a returned value cannot do.
    """

    write_hint = "it is written through the handle it loads"

    def __init__(
        self,
        *,
        path: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path, credentials, fs_args, metadata)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"{type(self).__name__}({self._location!r}) is read-only: {self.write_hint}"
        )
