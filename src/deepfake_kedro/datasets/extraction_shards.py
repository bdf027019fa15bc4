"""The extraction reports of a branch's shards: one JSON file per shard, in one folder."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from kedro.io import DatasetError

from deepfake_kedro.datasets.base import FsspecDataset
from deepfake_kedro.features.shards import parse_shard_key, shard_key


class ExtractionShardsDataset(FsspecDataset):
    """Shard reports under ``<path>/shard-<i>-of-<n>.json`` (local or fsspec, e.g. ``s3://``).

    ``save(report)`` writes one shard's report under its own name, taken from the report's
    ``shard_index`` and ``num_shards``: shards running at once (mapped Airflow tasks) never
    write the same file, and a shard run again replaces only its own. ``load()`` returns every
    report in the folder by name (``{"shard-0000-of-0002": {...}, ...}``); the gather step
    picks those of its shard count (:func:`deepfake_kedro.features.shards.gather_reports`).
    """

    def __init__(
        self,
        *,
        path: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path.rstrip("/"), credentials, fs_args, metadata)

    def load(self) -> dict[str, dict[str, Any]]:
        fs, root = self._fs()
        reports = {}
        for path in sorted(fs.glob(f"{root}/shard-*.json")):
            key = PurePosixPath(path).stem
            if parse_shard_key(key) is not None:
                reports[key] = json.loads(fs.cat_file(path))
        if not reports:
            raise DatasetError(
                f"no extraction shard report under {self._location}: run the branch's "
                "extract_features_node first"
            )
        return reports

    def save(self, data: dict[str, Any]) -> None:
        try:
            key = shard_key(int(data["shard_index"]), int(data["num_shards"]))
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(
                f"an extraction shard report needs integer 'shard_index' and 'num_shards' "
                f"(saving to {self._location}): {err!r}"
            ) from err
        fs, root = self._fs()
        fs.makedirs(root, exist_ok=True)
        fs.pipe_file(f"{root}/{key}.json", json.dumps(data, indent=2).encode())

    def _exists(self) -> bool:
        fs, root = self._fs()
        return bool(fs.glob(f"{root}/shard-*.json"))
