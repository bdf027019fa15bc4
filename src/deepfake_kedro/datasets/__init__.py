"""Custom Kedro datasets for formats kedro-datasets does not cover."""

from deepfake_kedro.datasets.extraction_shards import ExtractionShardsDataset
from deepfake_kedro.datasets.feature_cache import FeatureCacheDataset
from deepfake_kedro.datasets.image_store import ImageStoreDataset
from deepfake_kedro.datasets.image_table import ImageTableDataset
from deepfake_kedro.datasets.manifest import ManifestCSVDataset
from deepfake_kedro.datasets.mlflow_tags import MlflowTagsDataset
from deepfake_kedro.datasets.npz import NpzDataset
from deepfake_kedro.datasets.registered_model import (
    ChampionCheckpointDataset,
    RegisteredDetector,
    RegisteredModelDataset,
)
from deepfake_kedro.datasets.torch_checkpoint import CheckpointStoreDataset, TorchCheckpointDataset

__all__ = [
    "ChampionCheckpointDataset",
    "CheckpointStoreDataset",
    "ExtractionShardsDataset",
    "FeatureCacheDataset",
    "ImageStoreDataset",
    "ImageTableDataset",
    "ManifestCSVDataset",
    "MlflowTagsDataset",
    "NpzDataset",
    "RegisteredDetector",
    "RegisteredModelDataset",
    "TorchCheckpointDataset",
]
