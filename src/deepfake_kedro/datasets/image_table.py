"""A read-only dataset of images to score: a manifest (CSV/Parquet) or a folder of images."""

from __future__ import annotations

import posixpath
from typing import Any

import pandas as pd
from kedro.io import DatasetError

from deepfake_kedro.datasets.base import HandleDataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


class ImageTableDataset(HandleDataset[pd.DataFrame]):
    """``load()`` returns one row per image, with ``image_id`` and an absolute ``image_path``.

    - ``path`` is a manifest (``.csv`` or ``.parquet`` with an ``image_path`` column, relative
      paths resolved against the manifest's folder; any other columns, such as ``label``, are
      kept) or a folder, whose image files (``.png``, ``.jpg``, ...) are listed recursively.
    - Works on local paths and any fsspec URI (``s3://bucket/batch/``).

    Catalog entry::

        inference_images:
          type: deepfake_kedro.datasets.ImageTableDataset
          path: ${runtime_params:inference_input,data/01_raw/manifest.csv}

    Args:
        path: Manifest file or image folder.
        credentials: fsspec credentials, merged into fs_args.
        fs_args: Extra fsspec storage options.
        metadata: Free-form metadata.
    """

    write_hint = "it lists images to score; the scores are written to another dataset"

    def load(self) -> pd.DataFrame:
        fs, path = self._fs()
        if not fs.exists(path):
            raise DatasetError(
                f"images to score not found: {self._location!r} does not exist. Point "
                "--params inference_input=<manifest.csv|folder> at a manifest or an image folder"
            )
        if fs.isdir(path):
            return self._folder(fs, path)
        suffix = posixpath.splitext(path)[1].lower()
        if suffix not in TABLE_SUFFIXES:
            raise DatasetError(
                f"{self._location!r} is neither a folder nor a manifest ({', '.join(TABLE_SUFFIXES)})"
            )
        with fs.open(path, "rb") as handle:
            table = pd.read_parquet(handle) if suffix != ".csv" else pd.read_csv(handle)
        if "image_path" not in table.columns and "image_bytes" not in table.columns:
            raise DatasetError(
                f"manifest {self._location!r} has no 'image_path' column (nor 'image_bytes'); "
                f"columns present: {', '.join(map(str, table.columns))}"
            )
        base = posixpath.dirname(path)
        if "image_path" in table.columns:
            table["image_path"] = [
                self._absolute(fs, base, value) for value in table["image_path"].tolist()
            ]
        if "image_id" not in table.columns:
            # The path where there is one, else the row's position (rows of inline bytes).
            paths = table["image_path"] if "image_path" in table.columns else [None] * len(table)
            table.insert(
                0,
                "image_id",
                [p if isinstance(p, str) and p.strip() else str(i) for i, p in enumerate(paths)],
            )
        return table

    def _folder(self, fs: Any, path: str) -> pd.DataFrame:
        files = sorted(
            p for p in fs.find(path) if posixpath.splitext(p)[1].lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DatasetError(
                f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {self._location!r}"
            )
        root = path.rstrip("/") + "/"
        return pd.DataFrame(
            {
                "image_id": [p.removeprefix(root) for p in files],
                "image_path": [self._uri(fs, p) for p in files],
            }
        )

    def _absolute(self, fs: Any, base: str, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            return value
        if "://" in value or posixpath.isabs(value):
            return value
        return self._uri(fs, posixpath.normpath(posixpath.join(base, value)))

    @staticmethod
    def _uri(fs: Any, path: str) -> str:
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return path if protocol in ("file", "local") else fs.unstrip_protocol(path)

    def _exists(self) -> bool:
        fs, path = self._fs()
        return fs.exists(path)
