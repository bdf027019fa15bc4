"""A real spectral-only model of the tiny demo data, shared by the validation tests."""

from __future__ import annotations

import pytest

from deepfake_kedro.datasets import FeatureCacheDataset
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig
from deepfake_kedro.pipelines.ensemble_training.nodes import train_ensemble
from deepfake_kedro.pipelines.feature_extraction.nodes import collect_features, extract_features
from deepfake_kedro.training import TrainingConfig
from deepfake_kedro.training.augmentation import AugmentationConfig
from deepfake_kedro.training.synthetic import SyntheticFakesConfig

RUNTIME = ExtractionConfig(batch_size=16, num_workers=0, progress=False)


class _NoState:
    def load(self):
        return None

    def save(self, checkpoint):
        pass


@pytest.fixture(scope="module")
def trained(split_manifest, tiny_demo_dir, tmp_path_factory):
    """``(store, checkpoint, cache)``: spectral features of the tiny demo data in a cache and
    a head trained on them."""
    store = ImageStore(str(tiny_demo_dir))
    cache = FeatureCacheDataset(path=str(tmp_path_factory.mktemp("cache"))).load()
    backbone = BackboneConfig(kind="spectral", image_size=64)
    report = extract_features(
        split_manifest, store, cache, backbone, RUNTIME, AugmentationConfig(views=0),
        SyntheticFakesConfig(), branch="spectral",
    )  # fmt: skip
    checkpoint, *_ = train_ensemble(
        split_manifest,
        {"fingerprint": "f" * 64},
        _NoState(),
        TrainingConfig(epochs=10, patience=5, batch_size=16, device="cpu"),
        spectral=collect_features(split_manifest, cache, report),
    )
    return store, checkpoint, cache
