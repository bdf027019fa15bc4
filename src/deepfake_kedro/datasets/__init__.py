"""Custom Kedro datasets for formats kedro-datasets does not cover."""

from deepfake_kedro.datasets.image_store import ImageStoreDataset

__all__ = ["ImageStoreDataset"]
