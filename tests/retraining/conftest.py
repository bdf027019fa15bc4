"""Fixtures: a real SQLite MLflow store, a real spectral-only fusion checkpoint trained on the
tiny demo data, and a helper that registers it as champion the way registration does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from deepfake_kedro.datasets import FeatureCacheDataset
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.ingestion import (
    IngestionConfig,
    dataset_fingerprint,
    split_by_source,
    validate_manifest,
)
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig
from deepfake_kedro.pipelines.ensemble_training.nodes import train_ensemble
from deepfake_kedro.pipelines.feature_extraction.nodes import collect_features, extract_features
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import register_model
from deepfake_kedro.retraining.champion import CHECKPOINT_ARTIFACTS, MANIFEST_ARTIFACT
from deepfake_kedro.training import TrainingConfig
from deepfake_kedro.training.augmentation import AugmentationConfig
from deepfake_kedro.training.synthetic import SyntheticFakesConfig

EXPERIMENT = "deepfake_kedro"
MODEL_NAME = "deepfake-detector"
RUNTIME = ExtractionConfig(batch_size=16, num_workers=0, progress=False)
NO_AUGMENTATION = AugmentationConfig(views=0)
INGESTION = IngestionConfig(min_group_size=2, num_workers=2)


class _NoState:
    def load(self) -> None:
        return None

    def save(self, checkpoint: dict) -> None:
        pass


@pytest.fixture
def client(registry_tracking: str) -> MlflowClient:
    """A client on a fresh copy of a migrated SQLite store (tests/conftest.py)."""
    return MlflowClient(registry_tracking)


@pytest.fixture(scope="session")
def current_manifest(tiny_demo_dir: Path) -> pd.DataFrame:
    """The tiny demo data validated and split as data_ingestion does."""
    valid, _ = validate_manifest(
        pd.read_csv(tiny_demo_dir / "manifest.csv"), ImageStore(str(tiny_demo_dir)), INGESTION
    )
    return split_by_source(valid, INGESTION.split)


@pytest.fixture(scope="session")
def spectral_cache_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("feature_cache") / "spectral")


@pytest.fixture(scope="session")
def champion_checkpoint(
    current_manifest: pd.DataFrame, tiny_demo_dir: Path, spectral_cache_root: str
) -> dict[str, Any]:
    """A spectral-only fusion checkpoint trained on the tiny demo data (features cached)."""
    store = ImageStore(str(tiny_demo_dir))
    cache = FeatureCacheDataset(path=spectral_cache_root).load()
    backbone = BackboneConfig(kind="spectral", image_size=64)
    report = extract_features(
        current_manifest,
        store,
        cache,
        backbone,
        RUNTIME,
        NO_AUGMENTATION,
        SyntheticFakesConfig(),
        branch="spectral",
    )
    spectral = collect_features(current_manifest, cache, report)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        checkpoint, *_ = train_ensemble(
            current_manifest,
            {"fingerprint": "f" * 64},
            _NoState(),
            TrainingConfig(epochs=10, patience=5, batch_size=16, device="cpu"),
            spectral=spectral,
        )
    finally:
        torch.set_num_threads(previous)
    return checkpoint


RegisterChampion = Callable[..., str]


@pytest.fixture
def register_champion(client: MlflowClient, tmp_path: Path) -> RegisterChampion:
    """``register_champion(checkpoint, manifest, test_auc=..., artifacts=True)`` -> version.

    Logs the checkpoint and split manifest as run artifacts and registers the version with the
    tags registration writes (``dataset_fingerprint``, ``gate.test_auc``,
    ``data_newest_captured_at``, ``trained_at``); the version becomes champion.
    """

    def register(
        checkpoint: dict[str, Any],
        manifest: pd.DataFrame,
        *,
        test_auc: float = 0.9,
        checkpoint_artifact: bool = True,
        manifest_artifact: bool = True,
    ) -> str:
        fingerprint = dataset_fingerprint(manifest)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        run = client.create_run(experiment.experiment_id)
        run_id = run.info.run_id
        folder = tmp_path / f"artifacts-{run_id}"
        folder.mkdir()
        if checkpoint_artifact:
            torch.save(checkpoint, folder / "fusion_checkpoint.pt")
            client.log_artifact(
                run_id,
                str(folder / "fusion_checkpoint.pt"),
                str(Path(CHECKPOINT_ARTIFACTS[0]).parent),
            )
        if manifest_artifact:
            manifest.to_parquet(folder / "split_manifest.parquet")
            client.log_artifact(
                run_id, str(folder / "split_manifest.parquet"), str(Path(MANIFEST_ARTIFACT).parent)
            )
        # What mlflow.register_model looks for in a model folder.
        client.log_text(run_id, "flavors: {}\n", f"{Path(CHECKPOINT_ARTIFACTS[0]).parent}/MLmodel")
        client.set_terminated(run_id)
        result = register_model(
            client,
            RegistryConfig(model_name=MODEL_NAME, allow_different_test_data=True),
            model_uri=f"runs:/{run_id}/{Path(CHECKPOINT_ARTIFACTS[0]).parent}",
            verdict={"passed": True},
            metrics={"test_auc": test_auc},
            tags={
                "dataset_fingerprint": fingerprint["fingerprint"],
                "data_newest_captured_at": fingerprint["newest_captured_at"],
                "trained_at": "2026-01-01T00:00:00Z",
            },
        )
        assert result.promoted or result.champion == result.version, result.reason
        return str(result.version)

    return register
