"""Turn a table of images to score into rows the feature engine reads.

A caller gives images either as ``image_path`` (a local path or any fsspec URI such as
``s3://bucket/key.png``, read only under the allowed roots, see
:mod:`deepfake_kedro.inference.paths`) or as ``image_bytes`` (base64 of the file's bytes, for
callers that send images over the wire). Each image is read once, checked to decode, hashed,
and held in an :class:`InlineImageStore` that the extraction engine (and its DataLoader
workers) reads from. Unreadable or refused images are reported per row instead of failing the
whole batch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pandas as pd
from PIL import Image

from deepfake_kedro.inference.paths import PathPolicy

INPUT_COLUMNS = ("image_path", "image_bytes")
ID_COLUMN = "image_id"


class InlineImageStore:
    """Images already read into memory, keyed by the row key the engine asks for.

    Duck-types :class:`~deepfake_kedro.io.image_store.ImageStore` for feature extraction
    (``read_bytes``, ``root_uri``) and pickles with its bytes, so DataLoader workers can use it.
    """

    root_uri = "<images given to the model>"

    def __init__(self, images: Mapping[str, bytes] | None = None) -> None:
        self.images: dict[str, bytes] = dict(images or {})

    def __repr__(self) -> str:
        return f"InlineImageStore({len(self.images)} images)"

    def read_bytes(self, path: str) -> bytes:
        return self.images[path]


@dataclass
class ImageBatch:
    """Images ready to score.

    Attributes:
        table: One row per input row, in input order: ``image_id``, ``image_path`` (as given,
            ``None`` for inline bytes), ``key`` (the engine's path), ``content_hash`` and
            ``error`` (``None`` when the image is readable).
        store: The readable images' bytes.
    """

    table: pd.DataFrame
    store: InlineImageStore = field(default_factory=InlineImageStore)

    @property
    def readable(self) -> pd.DataFrame:
        """Rows whose image can be scored, as the engine wants them."""
        ok = self.table[self.table["error"].isna()]
        return pd.DataFrame(
            {"image_path": ok["key"].to_numpy(), "content_hash": ok["content_hash"].to_numpy()},
            index=ok.index,
        )


def read_image_table(
    images: pd.DataFrame,
    *,
    base_dir: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    max_image_mb: float = 50.0,
    allowed_roots: Sequence[str] | None = None,
) -> ImageBatch:
    """Read, check and hash every image of a table.

    Args:
        images: Rows with ``image_path`` and/or ``image_bytes`` (base64); an optional
            ``image_id`` is carried through (default: the row's position). Other columns are
            ignored, so a training manifest can be scored as it is.
        base_dir: Folder or URI that relative ``image_path`` values are resolved against.
        storage_options: fsspec options for remote paths.
        max_image_mb: Larger images are refused.
        allowed_roots: Folders and URL prefixes an ``image_path`` may be read from (plus
            those :func:`~deepfake_kedro.inference.paths.allow_roots` adds); a path outside
            them is an error row. ``None``: no check, for a caller reading its own files (the
            model always passes ``inference.allowed_roots``).

    Returns:
        The batch; rows whose image cannot be used have ``error`` set to why.

    Raises:
        ValueError: if the table is not a DataFrame or has neither input column.
    """
    if not isinstance(images, pd.DataFrame):
        raise ValueError(
            f"images to score must be a pandas DataFrame with an image_path or image_bytes "
            f"column; got {type(images).__name__}"
        )
    present = [c for c in INPUT_COLUMNS if c in images.columns]
    if not present:
        raise ValueError(
            "images to score need an 'image_path' column (local path or s3:// URI) or an "
            "'image_bytes' column (base64 of the image file); columns present: "
            f"{', '.join(map(str, images.columns)) or '(none)'}"
        )
    options = dict(storage_options or {})
    policy = PathPolicy(allowed_roots) if allowed_roots is not None else None
    limit = int(max_image_mb * 1024 * 1024)
    ids = (
        images[ID_COLUMN].tolist()
        if ID_COLUMN in images.columns
        else list(range(len(images)))
    )
    paths = images["image_path"].tolist() if "image_path" in images.columns else [None] * len(images)
    blobs = images["image_bytes"].tolist() if "image_bytes" in images.columns else [None] * len(images)

    store = InlineImageStore()
    records = []
    for position, (image_id, path, blob) in enumerate(zip(ids, paths, blobs, strict=True)):
        path = None if _missing(path) else str(path)
        key, content_hash, error = f"row-{position}", None, None
        try:
            if not _missing(blob):
                data = _decode_base64(blob)
            elif path is not None:
                uri = _resolve(path, base_dir)
                data = _read_path(policy.locate(uri) if policy else uri, options, limit)
            else:
                raise ValueError("neither image_path nor image_bytes is set")
            if len(data) > limit:
                raise ValueError(f"image is {len(data) / 2**20:.1f} MB, over max_image_mb")
            _check_decodes(data)
            content_hash = hashlib.sha256(data).hexdigest()
            store.images[key] = data
        except Exception as exc:  # one bad image never sinks the batch
            error = f"{type(exc).__name__}: {exc}"
        records.append(
            {
                ID_COLUMN: image_id,
                "image_path": path,
                "key": key,
                "content_hash": content_hash,
                "error": error,
            }
        )
    table = pd.DataFrame.from_records(
        records, columns=[ID_COLUMN, "image_path", "key", "content_hash", "error"]
    )
    table.index = images.index
    return ImageBatch(table=table, store=store)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:  # pd.NA: nullable dtypes, e.g. after convert_dtypes()
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    return isinstance(value, str) and not value.strip()


def _decode_base64(blob: Any) -> bytes:
    if isinstance(blob, bytes | bytearray):
        text = bytes(blob)
    else:
        text = str(blob).strip().encode("ascii", errors="strict")
    if text.startswith(b"data:"):  # a data URL: data:image/png;base64,<payload>
        text = text.partition(b",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"image_bytes is not valid base64 ({exc})") from exc


def _resolve(path: str, base_dir: str | None) -> str:
    if "://" in path or posixpath.isabs(path) or base_dir is None:
        return path
    if "://" in base_dir:
        return base_dir.rstrip("/") + "/" + path
    return posixpath.join(base_dir, path)


def _read_path(uri: str, options: Mapping[str, Any], limit: int) -> bytes:
    if posixpath.isabs(uri):  # a local file, whatever its name holds (never a chained URL)
        fs, fs_path = fsspec.filesystem("file"), uri
    else:
        fs, fs_path = fsspec.core.url_to_fs(uri, **options)
    size = fs.size(fs_path)
    if size is not None and size > limit:
        raise ValueError(f"{uri} is {size / 2**20:.1f} MB, over max_image_mb")
    with fs.open(fs_path, "rb") as handle:
        return handle.read()


def _check_decodes(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # a full decode: truncated files fail here, not mid-batch
        if min(image.size) < 8:
            raise ValueError(f"image is {image.size[0]}x{image.size[1]} px, too small to score")
