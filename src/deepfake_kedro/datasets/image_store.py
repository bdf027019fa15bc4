"""A read-only Kedro dataset that hands nodes an :class:`ImageStore` for an image folder."""

from __future__ import annotations

from deepfake_kedro.datasets.base import HandleDataset
from deepfake_kedro.io.image_store import ImageStore


class ImageStoreDataset(HandleDataset[ImageStore]):
    """Images under a folder or URI (local, ``s3://``, any fsspec protocol).

    ``load()`` returns an :class:`ImageStore` rooted at ``path``; nodes read images through
    it by the manifest's relative paths. Catalog entry::

        raw_images:
          type: deepfake_kedro.datasets.ImageStoreDataset
          path: s3://my-bucket/deepfakes/raw
          credentials: s3_data          # key in credentials.yml
          fs_args:
            client_kwargs: {endpoint_url: http://127.0.0.1:9000}

    Args:
        path: Root folder or URI of the images.
        credentials: fsspec credentials (e.g. ``key``/``secret`` for S3), merged into fs_args.
        fs_args: Extra fsspec storage options.
        metadata: Free-form metadata (Kedro-Viz reads ``kedro-viz.layer``).
    """

    write_hint = "images are written by the demo generator or by you, not by pipeline nodes"

    def load(self) -> ImageStore:
        return ImageStore(self._location, self._storage_options)

    def _exists(self) -> bool:
        store = self.load()
        return store.fs.isdir(store.root)
