"""A Kedro dataset that hands nodes the root of the feature caches (local or S3)."""

from __future__ import annotations

from deepfake_kedro.datasets.base import HandleDataset
from deepfake_kedro.features.cache import FeatureCacheRoot


class FeatureCacheDataset(HandleDataset[FeatureCacheRoot]):
    """The folder or URI under which each backbone's feature cache lives.

    ``load()`` returns a :class:`FeatureCacheRoot`; a node opens the cache of its extractor
    with ``root.open(extractor.identity())`` and writes shards through it as it extracts, so
    the dataset itself is read-only. Catalog entry::

        feature_cache:
          type: deepfake_kedro.datasets.FeatureCacheDataset
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

    write_hint = (
        "feature shards are written incrementally through the loaded FeatureCacheRoot "
        "(root.open(identity).write or deepfake_kedro.features.update_cache), not by returning "
        "data from a node"
    )

    def load(self) -> FeatureCacheRoot:
        return FeatureCacheRoot(self._location, self._storage_options)

    def _exists(self) -> bool:
        return self.load().exists()
