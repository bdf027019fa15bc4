"""The champion read from a real SQLite MLflow store, and the retraining pipeline on tiny data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deepfake_kedro.datasets import FeatureCacheDataset
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.io import ImageStore
from deepfake_kedro.pipelines.retraining import create_pipeline
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.retraining.champion import load_champion
from deepfake_kedro.retraining.checks import check_champion
from deepfake_kedro.retraining.config import RetrainingConfig

MODEL_NAME = "deepfake-detector"  # as in conftest.py
RUNTIME = ExtractionConfig(batch_size=16, num_workers=0, progress=False)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Kept(MemoryDataset):
    """Not released by the runner, so the test reads every intermediate."""

    def _release(self) -> None:
        pass


def test_no_registered_model_means_no_champion(client):
    assert load_champion(client, MODEL_NAME) is None
    result = check_champion(None)
    assert result.triggered and "no champion" in result.reason


def test_champion_facts_come_from_tags_and_run_artifacts(
    client, register_champion, champion_checkpoint, current_manifest
):
    version = register_champion(champion_checkpoint, current_manifest, test_auc=0.875)
    info = load_champion(client, MODEL_NAME)
    assert info.version == version and info.problems == []
    assert info.test_auc == 0.875
    assert info.fingerprint and len(info.fingerprint) == 64
    assert info.newest_captured_at is not None
    assert (datetime.now(UTC) - info.created_at) < timedelta(minutes=5)
    assert set(info.training_manifest["content_hash"]) == set(current_manifest["content_hash"])
    assert info.checkpoint["config"]["branches"] == ["spectral"]
    assert not check_champion(info).triggered


def test_champion_without_training_data_triggers_with_the_reason(
    client, register_champion, champion_checkpoint, current_manifest
):
    register_champion(champion_checkpoint, current_manifest, manifest_artifact=False)
    info = load_champion(client, MODEL_NAME)
    assert info.training_manifest is None
    result = check_champion(info)
    assert result.triggered and "champion has no recorded training data" in result.reason


def _flipped(manifest: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows posing as new data whose labels break the champion (labels swapped)."""
    rows = manifest.head(n).copy()
    rows["content_hash"] = rows["content_hash"] + "-new"  # unseen by the champion
    rows["label"] = rows["label"].map({"real": "fake", "fake": "real"})
    return rows


def _run(client, tiny_demo_dir, spectral_cache_root, tmp_path, current, config=None):
    """Run the pipeline from the validated manifest on (its first node is data_ingestion's)."""
    catalog = DataCatalog(
        {
            "mlflow_registry": MemoryDataset(client, copy_mode="assign"),
            "raw_images": MemoryDataset(ImageStore(str(tiny_demo_dir)), copy_mode="assign"),
            "spectral.feature_cache": MemoryDataset(
                FeatureCacheDataset(path=spectral_cache_root).load(), copy_mode="assign"
            ),
            "resnet.feature_cache": MemoryDataset(
                FeatureCacheDataset(path=str(tmp_path / "resnet")).load(), copy_mode="assign"
            ),
            "clip.feature_cache": MemoryDataset(
                FeatureCacheDataset(path=str(tmp_path / "clip")).load(), copy_mode="assign"
            ),
            "retraining_current_manifest": MemoryDataset(current),
            "retraining_current_fingerprint": MemoryDataset({"fingerprint": "current"}),
            "params:registry": MemoryDataset(RegistryConfig(model_name=MODEL_NAME)),
            "params:retraining": MemoryDataset(config or RetrainingConfig()),
            "params:feature_extraction.runtime": MemoryDataset(RUNTIME),
            **{
                name: Kept()
                for name in (
                    "retraining_champion",
                    "retraining_new_data",
                    "retraining_features",
                    "retraining_check_champion",
                    "retraining_check_freshness",
                    "retraining_check_degradation",
                    "retraining_check_drift",
                    "retraining_decision",
                    "retraining_metrics",
                )
            },
        }
    )
    pipeline = create_pipeline().from_nodes("load_champion_info_node")
    SequentialRunner().run(pipeline, catalog)
    return {
        name: catalog.load(name)
        for name in ("retraining_decision", "retraining_features", "retraining_metrics")
    }


def test_pipeline_without_champion_decides_to_retrain(
    client, tiny_demo_dir, spectral_cache_root, tmp_path, current_manifest
):
    out = _run(client, tiny_demo_dir, spectral_cache_root, tmp_path, current_manifest)
    decision = out["retraining_decision"]
    assert decision["retrain"] and decision["answer"] == "yes"
    assert decision["checks"]["champion"]["triggered"]
    assert any("no champion" in reason for reason in decision["reasons"])
    assert out["retraining_metrics"]["retrain"] == {"value": 1.0, "step": 0}


def test_pipeline_with_nothing_new_keeps_the_champion_and_says_why(
    client,
    register_champion,
    champion_checkpoint,
    tiny_demo_dir,
    spectral_cache_root,
    tmp_path,
    current_manifest,
):
    register_champion(champion_checkpoint, current_manifest)
    out = _run(client, tiny_demo_dir, spectral_cache_root, tmp_path, current_manifest)
    decision = out["retraining_decision"]
    assert not decision["retrain"] and decision["answer"] == "no"
    assert "no new labelled data" in decision["reasons"][0]
    assert {c["triggered"] for c in decision["checks"].values()} == {False}
    assert out["retraining_features"]["new"] == {}  # nothing was embedded


def test_pipeline_triggers_on_new_data_that_breaks_the_champion(
    client,
    register_champion,
    champion_checkpoint,
    tiny_demo_dir,
    spectral_cache_root,
    tmp_path,
    current_manifest,
):
    register_champion(champion_checkpoint, current_manifest, test_auc=0.8)
    new = _flipped(current_manifest, 30)
    # The "new" rows reuse images under new hashes: the cache extracts them once, then has them.
    current = pd.concat([current_manifest, new], ignore_index=True)
    config = RetrainingConfig(drift={"trigger": True, "auc_threshold": 0.75})
    out = _run(client, tiny_demo_dir, spectral_cache_root, tmp_path, current, config)
    decision = out["retraining_decision"]
    degradation = decision["checks"]["degradation"]
    assert decision["retrain"]
    assert degradation["evaluated"] and degradation["triggered"]
    assert degradation["value"] < degradation["threshold"] == pytest.approx(0.8 * 0.95)
    assert any(reason.startswith("degradation:") for reason in decision["reasons"])
    # Same images as the training data: the embeddings do not drift, whatever the labels say.
    assert decision["checks"]["drift"]["evaluated"] and not decision["checks"]["drift"]["triggered"]
    assert decision["checks"]["freshness"]["details"]["n_new_images"] == 30
    assert out["retraining_features"]["n_extracted"] == {"spectral": 30}

    again = _run(client, tiny_demo_dir, spectral_cache_root, tmp_path, current, config)
    assert again["retraining_features"]["n_extracted"] == {"spectral": 0}  # from the cache now
    assert again["retraining_decision"]["checks"]["degradation"]["triggered"]
