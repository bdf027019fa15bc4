"""Read-only access to the images a manifest points at, on local disk or any fsspec store (S3).

An :class:`ImageStore` is rooted at a folder (``data/01_raw`` or ``s3://bucket/prefix``).
Manifest paths are resolved relative to that root; a path that would leave the root
(``../``, an absolute path elsewhere, another bucket) is refused, so a manifest can never
make the pipeline read arbitrary files. The object is picklable, so DataLoader workers can
use it.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

import fsspec
from fsspec.core import url_to_fs


class PathEscapeError(ValueError):
    """A manifest path points outside the image root."""


class ImageStore:
    """Images under one root folder or URI.

    Args:
        root: Folder or URI that manifest paths are relative to (``data/01_raw``,
            ``s3://bucket/prefix``).
        storage_options: Passed to fsspec (credentials, ``client_kwargs.endpoint_url``...).
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        self.fs, fs_root = url_to_fs(str(root), **self.storage_options)
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.root = posixpath.normpath(self.fs._strip_protocol(fs_root)).rstrip("/") or "/"
        self.root_uri = str(root)

    def __repr__(self) -> str:
        return f"ImageStore(root={self.root_uri!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"root_uri": self.root_uri, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root_uri"], state["storage_options"])

    def resolve(self, path: str) -> str:
        """Return the store-internal path of a manifest path, refusing paths outside the root.

        Relative paths are joined to the root; absolute paths and URIs are accepted only when
        they lie under the root.

        Raises:
            PathEscapeError: if the path is empty or leaves the root.
        """
        raw = str(path).strip()
        if not raw:
            raise PathEscapeError("empty image path")
        if "://" in raw:
            protocol = raw.split("://", 1)[0]
            protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
            if protocol not in protocols:
                raise PathEscapeError(
                    f"{raw!r} uses protocol {protocol!r} but the image root {self.root_uri!r} is "
                    f"{protocols[0]!r}; use a path relative to the root"
                )
            candidate = posixpath.normpath(self.fs._strip_protocol(raw))
        elif raw.startswith("/"):
            candidate = posixpath.normpath(raw)
        else:
            candidate = posixpath.normpath(posixpath.join(self.root, raw))
        if not _is_under(candidate, self.root) or (
            self.is_local and not _is_under(os.path.realpath(candidate), os.path.realpath(self.root))
        ):
            raise PathEscapeError(
                f"{raw!r} resolves outside the image root {self.root_uri!r}; manifest paths must "
                "stay inside the folder that holds the manifest (symlinks may not point out of it)"
            )
        return candidate

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    def uri(self, path: str) -> str:
        """Full URI of a manifest path (``s3://...`` or a local absolute path)."""
        resolved = self.resolve(path)
        return resolved if self.is_local else f"{self.protocol}://{resolved}"

    def exists(self, path: str) -> bool:
        return self.fs.isfile(self.resolve(path))

    def read_bytes(self, path: str) -> bytes:
        """Bytes of the image at a manifest path."""
        return self.fs.cat_file(self.resolve(path))

    def open(self, path: str, mode: str = "rb") -> fsspec.core.OpenFile:
        return self.fs.open(self.resolve(path), mode)


def _is_under(path: str, root: str) -> bool:
    root = root if root.endswith("/") else root + "/"
    return path.startswith(root)
