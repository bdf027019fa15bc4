"""Read-only access to the images a manifest points at, on local disk or any fsspec store (S3).

An :class:`ImageStore` is rooted at a folder (``data/01_raw`` or ``s3://bucket/prefix``).
Manifest paths are resolved relative to that root; a path that would leave the root
(``../``, an absolute path elsewhere, another bucket) is refused, so a manifest can never
make the pipeline read arbitrary files. Absolute URIs (``s3://bucket/other/x.png``) are also
accepted under the extra ``allowed_roots`` a catalog entry names (e.g. the whole bucket).
The object is picklable, so DataLoader workers can use it.

Images are streamed: each read fetches one object (``read_bytes``) or one batch of objects
concurrently (``read_many``), never a local copy of the store. Transient S3 errors are retried
by botocore within the time budget of the storage options, e.g.
``config_kwargs: {connect_timeout: 5, read_timeout: 8, retries: {total_max_attempts: 3,
mode: adaptive}}`` (conf/s3/globals.yml; :mod:`deepfake_kedro.lake.connection` explains the
budget). A run checks the endpoint before its first read (:mod:`deepfake_kedro.lake.hooks`).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
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
        storage_options: Passed to fsspec (credentials, ``client_kwargs.endpoint_url``,
            ``config_kwargs.retries``...).
        allowed_roots: Further folders or URIs (same protocol as ``root``) that absolute
            manifest paths may point under, e.g. ``["s3://bucket"]`` for any object of the
            bucket. Relative paths always resolve against ``root``.

    Raises:
        ValueError: if an allowed root uses another protocol than ``root``.
    """

    def __init__(
        self,
        root: str,
        storage_options: dict[str, Any] | None = None,
        allowed_roots: Sequence[str] = (),
    ) -> None:
        self.storage_options = dict(storage_options or {})
        self.fs, fs_root = url_to_fs(str(root), **self.storage_options)
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.root = posixpath.normpath(self.fs._strip_protocol(fs_root)).rstrip("/") or "/"
        self.root_uri = str(root)
        self.allowed_roots_uris = [str(extra) for extra in allowed_roots]
        self.allowed_roots = [self._strip_root(extra) for extra in self.allowed_roots_uris]

    def _strip_root(self, uri: str) -> str:
        if "://" in uri and uri.split("://", 1)[0] not in self._protocols:
            raise ValueError(
                f"allowed root {uri!r} uses another protocol than the image root "
                f"{self.root_uri!r}; list only {self._protocols[0]}:// locations in allowed_roots"
            )
        return posixpath.normpath(self.fs._strip_protocol(uri)).rstrip("/") or "/"

    @property
    def _protocols(self) -> tuple[str, ...]:
        return self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)

    def __repr__(self) -> str:
        return f"ImageStore(root={self.root_uri!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "root_uri": self.root_uri,
            "storage_options": self.storage_options,
            "allowed_roots": self.allowed_roots_uris,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root_uri"], state["storage_options"], state.get("allowed_roots", ()))

    def resolve(self, path: str) -> str:
        """Return the store-internal path of a manifest path, refusing paths outside the root.

        Relative paths are joined to the root; absolute paths and URIs are accepted only when
        they lie under the root or one of the ``allowed_roots``.

        Raises:
            PathEscapeError: if the path is empty or leaves the root.
        """
        raw = str(path).strip()
        if not raw:
            raise PathEscapeError("empty image path")
        if "://" in raw:
            protocol = raw.split("://", 1)[0]
            protocols = self._protocols
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
        roots = [self.root] if "://" not in raw and not raw.startswith("/") else [
            self.root, *self.allowed_roots
        ]
        if not any(self._contains(root, candidate) for root in roots):
            allowed = "".join(f", {uri!r}" for uri in self.allowed_roots_uris)
            raise PathEscapeError(
                f"{raw!r} resolves outside the image root {self.root_uri!r}{allowed}; manifest "
                "paths must stay inside the folder that holds the manifest (symlinks may not "
                "point out of it); absolute URIs elsewhere need their folder in the image "
                "dataset's allowed_roots"
            )
        return candidate

    def _contains(self, root: str, candidate: str) -> bool:
        if not _is_under(candidate, root):
            return False
        return not self.is_local or _is_under(os.path.realpath(candidate), os.path.realpath(root))

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

    def read_many(self, paths: Sequence[str]) -> list[bytes | Exception]:
        """Bytes of several images, fetched as one batch (concurrent requests on S3).

        A path that cannot be read does not fail the batch: its slot holds the exception
        (``PathEscapeError``, ``FileNotFoundError``, ``PermissionError``...), so the caller can
        report every bad row at once.

        Args:
            paths: Manifest paths, in the order the results are returned.
        """
        results: list[bytes | Exception | None] = [None] * len(paths)
        keys: dict[str, list[int]] = {}
        for i, path in enumerate(paths):
            try:
                keys.setdefault(self.resolve(path), []).append(i)
            except PathEscapeError as exc:
                results[i] = exc
        if keys:
            fetched = self.fs.cat(list(keys), on_error="return")
            if not isinstance(fetched, dict):  # fsspec returns bare bytes for a single path
                fetched = {next(iter(keys)): fetched}
            for key, indices in keys.items():
                value = fetched.get(key, fetched.get(f"{self.protocol}://{key}"))
                if value is None:
                    value = FileNotFoundError(key)
                for i in indices:
                    results[i] = value
        return results  # type: ignore[return-value]

    def open(self, path: str, mode: str = "rb") -> fsspec.core.OpenFile:
        return self.fs.open(self.resolve(path), mode)


def _is_under(path: str, root: str) -> bool:
    root = root if root.endswith("/") else root + "/"
    return path.startswith(root)
