"""A feature cache keyed by image content hash, per backbone identity, on local disk or S3.

Layout under a root (``data/04_feature`` or ``s3://bucket/prefix/04_feature``)::

    {root}/{kind}-{key}/meta.json                  identity, feature_dim, created
    {root}/{kind}-{key}/shard-{time}-{uuid}.parquet   content_hash + features rows

``key`` is a hash of the extractor's identity (backbone, weights, preprocessing), so a change
of any of them writes to a new folder and never mixes features. Shard files are immutable and
uniquely named, so fan-out workers write in parallel without coordination.

Shard format: Parquet with a ``content_hash`` string column and a ``features`` column of
``fixed_size_list<float32>[dim]``. Chosen over ``.npz`` because Parquet's footer lets a reader
fetch one column (the hashes) or a few row groups with ranged reads through any fsspec file,
which matters on S3 where ``cached_hashes`` must not download every feature; ``.npz`` is a zip
whose members are located via the central directory, readable but not column/row-range
friendly, and it stores hashes as fixed-width UTF-32. Parquet is also what the rest of the
project uses (manifests) and what pandas/DuckDB/Spark read directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from deepfake_kedro.values import utc_now

logger = logging.getLogger(__name__)

HASH_COLUMN = "content_hash"
FEATURES_COLUMN = "features"
META_FILE = "meta.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".parquet"
# Small row groups let ``load`` fetch only the rows it needs from a shard.
ROW_GROUP_SIZE = 256
FORMAT_VERSION = 1


class CacheIdentityError(ValueError):
    """A cache folder holds features of a different extractor identity."""


class MissingFeaturesError(KeyError):
    """Requested content hashes are not in the cache."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, the form identities are hashed and compared in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cache_key(identity: dict[str, Any]) -> str:
    """The cache key of an extractor identity: first 16 hex chars of sha256 of canonical JSON.

    Raises:
        TypeError: if the identity is not JSON-serialisable.
    """
    try:
        text = canonical_json(identity)
    except TypeError as exc:
        raise TypeError(
            f"extractor identity must be JSON-serialisable to key the feature cache: {exc}"
        ) from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _identity_kind(identity: dict[str, Any]) -> str:
    kind = identity.get("kind")
    if kind is None and isinstance(identity.get("config"), dict):
        kind = identity["config"].get("kind")
    if not kind:
        raise ValueError(
            "extractor identity has no 'kind' (resnet, clip, spectral...); the cache folder "
            f"is named after it. Identity keys: {sorted(identity)}"
        )
    safe = re.sub(r"[^A-Za-z0-9_.]+", "_", str(kind))
    return safe


class FeatureCache:
    """Features of one extractor identity, keyed by image content hash.

    Args:
        root: Folder or URI holding the caches of all backbones (local path, ``s3://...``,
            any fsspec URL).
        identity: JSON-serialisable identity of the extractor (with ``kind``); its hash is
            the cache key.
        storage_options: fsspec options (credentials, ``client_kwargs``...).

    Raises:
        CacheIdentityError: if the folder's ``meta.json`` records a different identity.
    """

    def __init__(
        self,
        root: str,
        identity: dict[str, Any],
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.root = str(root)
        self.identity = json.loads(canonical_json(identity))  # tuples -> lists, a private copy
        self.storage_options = dict(storage_options or {})
        self.key = cache_key(self.identity)
        self.kind = _identity_kind(self.identity)
        self.fs, fs_root = url_to_fs(self.root, **self.storage_options)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self._is_local = protocol in ("file", "local")
        self._dir = posixpath.join(fs_root.rstrip("/") or "/", f"{self.kind}-{self.key}")
        self.path = self._dir if self._is_local else f"{protocol}://{self._dir}"
        # Shards are immutable, so their hash lists can be remembered by path.
        self._hash_index: dict[str, np.ndarray] = {}
        self._meta = self._read_meta()
        if self._meta is not None:
            self._check_meta(self._meta)

    def __repr__(self) -> str:  # storage options may hold credentials: leave them out
        return f"FeatureCache(path={self.path!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "identity": self.identity,
            "storage_options": self.storage_options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["identity"], state["storage_options"])

    # -- metadata -------------------------------------------------------------------------

    @property
    def feature_dim(self) -> int | None:
        """Feature width recorded in ``meta.json``, or None before the first write."""
        return None if self._meta is None else int(self._meta["feature_dim"])

    def _read_meta(self) -> dict[str, Any] | None:
        meta_path = f"{self._dir}/{META_FILE}"
        try:
            raw = self.fs.cat_file(meta_path)
        except FileNotFoundError:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CacheIdentityError(
                f"{self.path}/{META_FILE} is not valid JSON ({exc}); delete the folder "
                f"{self.path} to rebuild this cache"
            ) from exc

    def _check_meta(self, meta: dict[str, Any]) -> None:
        if canonical_json(meta.get("identity")) != canonical_json(self.identity):
            raise CacheIdentityError(
                f"the feature cache {self.path} belongs to a different extractor identity:\n"
                f"  meta.json: {canonical_json(meta.get('identity'))}\n"
                f"  requested: {canonical_json(self.identity)}\n"
                "Its folder name is the hash of the identity, so this means the folder was "
                "copied or edited by hand; delete or move it and run feature_extraction again"
            )

    def _ensure_meta(self, feature_dim: int) -> None:
        if self._meta is None:
            self._meta = self._read_meta()  # a parallel worker may have written it meanwhile
        if self._meta is None:
            meta = {
                "identity": self.identity,
                "key": self.key,
                "kind": self.kind,
                "feature_dim": int(feature_dim),
                "format": "parquet",
                "format_version": FORMAT_VERSION,
                "created": utc_now(),
            }
            self._put_atomic(f"{self._dir}/{META_FILE}", json.dumps(meta, indent=2).encode())
            self._meta = meta
            logger.info("created feature cache %s (feature_dim=%d)", self.path, feature_dim)
            return
        self._check_meta(self._meta)
        if int(self._meta["feature_dim"]) != int(feature_dim):
            raise ValueError(
                f"features of width {feature_dim} cannot go into {self.path}, whose meta.json "
                f"records feature_dim={self._meta['feature_dim']} for the same identity; the "
                "extractor's identity() must change whenever its output changes"
            )

    # -- files ----------------------------------------------------------------------------

    def _put_atomic(self, path: str, data: bytes | pa.Buffer) -> None:
        """Write a whole file so readers see either nothing or all of it."""
        if self._is_local:
            os.makedirs(self._dir, exist_ok=True)
            # Hidden temporary name in the same folder (same filesystem): rename is atomic and
            # shard listings never match it.
            tmp = f"{self._dir}/.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                raise
        else:
            # One PUT of the whole body: an object store makes it visible all at once or not
            # at all (s3fs uses a single put_object below its multipart threshold, and
            # multipart uploads also only appear when completed).
            self.fs.pipe_file(path, data if isinstance(data, bytes) else data.to_pybytes())
        self.fs.invalidate_cache(self._dir)

    def shards(self) -> list[str]:
        """Paths of the shard files, sorted (oldest first by their time-stamped names)."""
        self.fs.invalidate_cache(self._dir)  # other workers may have written since
        try:
            names = self.fs.ls(self._dir, detail=False)
        except FileNotFoundError:
            return []
        found = [
            name
            for name in names
            if posixpath.basename(name).startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX)
        ]
        return sorted(found, key=posixpath.basename)

    @contextlib.contextmanager
    def _parquet(self, path: str) -> Iterator[pq.ParquetFile]:
        if self._is_local:
            parquet = pq.ParquetFile(path, memory_map=True)
            try:
                yield parquet
            finally:
                parquet.close()
            return
        # No read-ahead cache: Parquet reads exactly the footer and the column chunks it needs.
        with self.fs.open(path, "rb", cache_type="none") as file:
            yield pq.ParquetFile(file)

    def _shard_hashes(self, path: str) -> np.ndarray:
        hashes = self._hash_index.get(path)
        if hashes is None:
            with self._parquet(path) as parquet:
                table = parquet.read(columns=[HASH_COLUMN])
            hashes = np.asarray(table.column(HASH_COLUMN).to_pylist(), dtype=object)
            self._hash_index[path] = hashes
        return hashes

    def _index(self) -> dict[str, np.ndarray]:
        paths = self.shards()
        for stale in set(self._hash_index) - set(paths):
            del self._hash_index[stale]
        return {path: self._shard_hashes(path) for path in paths}

    # -- public API -----------------------------------------------------------------------

    def cached_hashes(self) -> set[str]:
        """Content hashes with features in the cache (reads only the shards' hash columns)."""
        found: set[str] = set()
        for hashes in self._index().values():
            found.update(hashes.tolist())
        return found

    def write(self, hashes: list[str], features: np.ndarray) -> str:
        """Write one new shard file atomically and return its path.

        Args:
            hashes: Content hashes, one per row.
            features: ``[len(hashes), feature_dim]`` array (stored as float32).

        Raises:
            ValueError: on a shape mismatch, non-finite values or a feature width that
                differs from the cache's.
        """
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(hashes):
            raise ValueError(
                f"features must be [n, feature_dim] with n = len(hashes) = {len(hashes)}; got "
                f"shape {tuple(features.shape)}"
            )
        if len(hashes) == 0:
            raise ValueError("refusing to write an empty shard (no hashes)")
        if not np.isfinite(features).all():
            bad = int((~np.isfinite(features).all(axis=1)).sum())
            raise ValueError(
                f"{bad} of {len(hashes)} feature rows contain NaN or inf; they are not cached. "
                "With precision fp16 this is usually overflow: try bf16 or fp32"
            )
        self._ensure_meta(features.shape[1])
        data = _shard_bytes(list(map(str, hashes)), features, self.key)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = f"{self._dir}/{SHARD_PREFIX}{stamp}-{uuid.uuid4().hex}{SHARD_SUFFIX}"
        self._put_atomic(path, data)
        logger.debug("wrote %d rows to %s", len(hashes), path)
        return path if self._is_local else self.path + path[len(self._dir) :]

    def load(self, hashes: Sequence[str]) -> np.ndarray:
        """Features for the given content hashes, in the given order (repeats allowed).

        Only the row groups that hold requested rows are read, one shard at a time, so memory
        holds the result plus one row group.

        Returns:
            float32 array ``[len(hashes), feature_dim]``.

        Raises:
            MissingFeaturesError: if some hashes are not cached.
        """
        wanted = [str(h) for h in hashes]
        index = self._index()
        where: dict[str, tuple[str, int]] = {}
        wanted_set = set(wanted)
        for path, shard_hashes in index.items():
            for row, value in enumerate(shard_hashes.tolist()):
                if value in wanted_set:
                    where[value] = (path, row)  # duplicates across shards hold equal features
        missing = [h for h in dict.fromkeys(wanted) if h not in where]
        if missing:
            examples = ", ".join(missing[:5])
            raise MissingFeaturesError(
                f"{len(missing)} of {len(set(wanted))} requested images have no features in "
                f"{self.path} (e.g. content_hash {examples}); run feature_extraction for this "
                "manifest and backbone first (kedro run --pipelines feature_extraction)"
            )
        dim = self.feature_dim
        if dim is None:  # nothing requested from an empty cache
            self._meta = self._read_meta()
            dim = self.feature_dim or 0
        out = np.empty((len(wanted), dim), dtype=np.float32)
        by_shard: dict[str, tuple[list[int], list[int]]] = {}
        for position, value in enumerate(wanted):
            path, row = where[value]
            positions, rows = by_shard.setdefault(path, ([], []))
            positions.append(position)
            rows.append(row)
        for path, (positions, rows) in by_shard.items():
            with self._parquet(path) as parquet:
                _gather(parquet, np.asarray(positions), np.asarray(rows), out)
        return out


def _shard_bytes(hashes: list[str], features: np.ndarray, key: str) -> pa.Buffer:
    dim = features.shape[1]
    values = pa.array(np.ascontiguousarray(features).reshape(-1), type=pa.float32())
    table = pa.table(
        {
            HASH_COLUMN: pa.array(hashes, type=pa.string()),
            FEATURES_COLUMN: pa.FixedSizeListArray.from_arrays(values, dim),
        }
    ).replace_schema_metadata({"deepfake_kedro.cache_key": key})
    sink = pa.BufferOutputStream()  # Arrow memory: no extra Python copy of the shard
    pq.write_table(table, sink, row_group_size=ROW_GROUP_SIZE, compression="zstd")
    return sink.getvalue()


def _features_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed_size_list<float32> column as a ``[n, dim]`` float32 array."""
    dim = column.type.list_size
    parts = [np.asarray(chunk.flatten(), dtype=np.float32) for chunk in column.chunks]
    flat = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
    return flat.reshape(-1, dim)


def _gather(
    parquet: pq.ParquetFile, positions: np.ndarray, rows: np.ndarray, out: np.ndarray
) -> None:
    """Copy shard ``rows`` into ``out[positions]``, reading only the row groups involved."""
    metadata = parquet.metadata
    starts = np.cumsum(
        [0] + [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    )
    groups = np.searchsorted(starts, rows, side="right") - 1
    for group in np.unique(groups):
        mask = groups == group
        table = parquet.read_row_group(int(group), columns=[FEATURES_COLUMN])
        features = _features_numpy(table.column(FEATURES_COLUMN))
        out[positions[mask]] = features[rows[mask] - starts[group]]


class FeatureCacheRoot:
    """The folder or URI that holds the feature caches of all backbones.

    A small picklable handle (what ``FeatureCacheDataset`` loads); ``open`` gives the cache of
    one extractor identity.

    Args:
        root: Local folder or fsspec URI (``s3://bucket/prefix/04_feature``).
        storage_options: fsspec options (credentials, ``client_kwargs``...).
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.root = str(root)
        self.storage_options = dict(storage_options or {})

    def __repr__(self) -> str:  # storage options may hold credentials: leave them out
        return f"FeatureCacheRoot(root={self.root!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FeatureCacheRoot)
            and other.root == self.root
            and other.storage_options == self.storage_options
        )

    __hash__ = None  # type: ignore[assignment]  # mutable options: not hashable

    def open(self, identity: dict[str, Any]) -> FeatureCache:
        """The cache of one extractor identity under this root."""
        return FeatureCache(self.root, identity, self.storage_options)

    def exists(self) -> bool:
        """Whether the root folder exists (an object store: whether anything is under it)."""
        fs, path = url_to_fs(self.root, **self.storage_options)
        return bool(fs.exists(path))
