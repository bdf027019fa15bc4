"""Custom Kedro datasets for formats kedro-datasets does not cover."""

from deepfake_kedro.datasets.feature_cache import FeatureCacheDataset
from deepfake_kedro.datasets.image_store import ImageStoreDataset
from deepfake_kedro.datasets.mlflow_tags import MlflowTagsDataset
from deepfake_kedro.datasets.npz import NpzDataset
from deepfake_kedro.datasets.torch_checkpoint import CheckpointStoreDataset, TorchCheckpointDataset

__all__ = [
    "CheckpointStoreDataset",
    "FeatureCacheDataset",
    "ImageStoreDataset",
    "MlflowTagsDataset",
    "NpzDataset",
    "TorchCheckpointDataset",
]
