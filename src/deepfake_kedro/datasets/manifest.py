"""The image manifest as a CSV table, with a clear error for a file that is not one."""

from __future__ import annotations

from typing import Any

import pandas as pd
from kedro.io import DatasetError
from kedro.io.core import get_filepath_str
from kedro_datasets.pandas import CSVDataset

from deepfake_kedro.ingestion.manifest_format import CSV_FIX, delimiter_hint, describe_unreadable
from deepfake_kedro.ingestion.validation import DataValidationError

_SAMPLE_BYTES = 64 * 1024


class ManifestCSVDataset(CSVDataset):
    """kedro-datasets' ``pandas.CSVDataset`` (same arguments) that says what an unreadable
    manifest looks like and how to fix it.

    A binary file (an image, a spreadsheet, a Parquet file), text in another encoding, an
    empty file, or a table separated by another character than ``load_args.sep`` (pandas would
    read it as one column) raises
    :class:`~deepfake_kedro.ingestion.validation.DataValidationError` naming the file, what it
    looks like and the fix.

    Catalog entry::

        raw_manifest:
          type: deepfake_kedro.datasets.ManifestCSVDataset
          filepath: data/01_raw/manifest.csv
    """

    def load(self) -> pd.DataFrame:
        try:
            frame = super().load()
        except DatasetError as err:
            cause = err.__cause__
            if isinstance(cause, UnicodeDecodeError):
                raise DataValidationError(
                    f"the manifest {self._path()} cannot be read as a CSV table: "
                    f"{describe_unreadable(self._head())}. Fix: {CSV_FIX}"
                ) from err
            if isinstance(cause, pd.errors.EmptyDataError):
                raise DataValidationError(
                    f"the manifest {self._path()} is empty. Fix: {CSV_FIX}"
                ) from err
            if isinstance(cause, pd.errors.ParserError):
                hint = delimiter_hint(self._sample(), self._sep())
                raise DataValidationError(
                    f"the manifest {self._path()} is not a well-formed CSV table ({cause}"
                    + (f"): it {hint}" if hint else "); every row needs the header's fields, "
                       "and a value holding the separator needs quotes")
                ) from err
            raise
        hint = delimiter_hint(self._sample(), self._sep(), [str(c) for c in frame.columns])
        if hint:
            raise DataValidationError(f"the manifest {self._path()} {hint}")
        return frame

    def _path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _sep(self) -> str:
        load_args: dict[str, Any] = self._load_args
        return str(load_args.get("sep", load_args.get("delimiter")) or ",")

    def _head(self) -> bytes:
        with self._fs.open(self._path(), "rb") as file:
            return file.read(_SAMPLE_BYTES)

    def _sample(self) -> str:
        encoding = self._load_args.get("encoding") or "utf-8"
        try:
            return self._head().decode(encoding, errors="replace")
        except LookupError:  # an unknown encoding: pandas said so already
            return ""
