"""A read-only Kedro dataset that hands nodes an :class:`ImageStore` for an image folder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
            config_kwargs:              # the time budget of every request
              connect_timeout: 5
              read_timeout: 8
              retries: {total_max_attempts: 3, mode: adaptive}
          allowed_roots: [s3://my-bucket]  # absolute s3:// manifest paths may point here

    Args:
        path: Root folder or URI of the images.
        credentials: fsspec credentials (e.g. ``key``/``secret`` for S3), merged into fs_args.
        fs_args: Extra fsspec storage options.
        allowed_roots: Further folders or URIs that absolute manifest paths may point under.
        metadata: Free-form metadata (Kedro-Viz reads ``kedro-viz.layer``).
    """

    write_hint = "images are written by the demo generator or by you, not by pipeline nodes"

    def __init__(
        self,
        *,
        path: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        allowed_roots: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path=path, credentials=credentials, fs_args=fs_args, metadata=metadata)
        self._allowed_roots = [str(root) for root in allowed_roots]

    def load(self) -> ImageStore:
        return ImageStore(self._location, self._storage_options, self._allowed_roots)

    def _exists(self) -> bool:
        store = self.load()
        return store.fs.isdir(store.root)
