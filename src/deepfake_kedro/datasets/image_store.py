"""A read-only Kedro dataset that hands nodes an :class:`ImageStore` for an image folder."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from deepfake_kedro.io.image_store import ImageStore


class ImageStoreDataset(AbstractDataset[Any, ImageStore]):
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

    def load(self) -> ImageStore:
        return ImageStore(self._path, self._storage_options)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"ImageStoreDataset({self._path!r}) is read-only: images are written by the demo "
            "generator or by you, not by pipeline nodes."
        )

    def _exists(self) -> bool:
        store = self.load()
        return store.fs.isdir(store.root)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}
