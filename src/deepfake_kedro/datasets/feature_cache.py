"""A Kedro dataset that hands nodes the root of the feature caches (local or S3)."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from deepfake_kedro.features.cache import FeatureCacheRoot


class FeatureCacheDataset(AbstractDataset[Any, FeatureCacheRoot]):
    """The folder or URI under which each backbone's feature cache lives.

    ``load()`` returns a :class:`FeatureCacheRoot`; a node opens the cache of its extractor
    with ``root.open(extractor.identity())`` and writes shards through it as it extracts, so
    the dataset itself is read-only. Catalog entry::

        feature_cache:
          type: deepfake_kedro.datasets.feature_cache.FeatureCacheDataset
          path: s3://my-bucket/deepfakes/04_feature/cache
          credentials: s3_data          # key in credentials.yml
          fs_args:
            client_kwargs: {endpoint_url: http://127.0.0.1:9000}

    Args:
        path: Root folder or URI of the caches.
        credentials: fsspec credentials (e.g. ``key``/``secret`` for S3), merged into fs_args.
        fs_args: Extra fsspec storage options.
        metadata: Free-form metadata (Kedro-Viz reads ``kedro-viz.layer``).
    """

    def __init__(
        self,
        *,
        path: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = str(path)
        self._storage_options = {**(fs_args or {}), **(credentials or {})}
        self.metadata = metadata

    def load(self) -> FeatureCacheRoot:
        return FeatureCacheRoot(self._path, self._storage_options)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"FeatureCacheDataset({self._path!r}) is read-only: feature shards are written "
            "incrementally through the loaded FeatureCacheRoot (root.open(identity).write or "
            "deepfake_kedro.features.update_cache), not by returning data from a node"
        )

    def _exists(self) -> bool:
        return self.load().exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}
