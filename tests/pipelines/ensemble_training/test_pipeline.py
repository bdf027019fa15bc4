"""ensemble_training on synthetic per-branch features joined to a real split manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from deepfake_kedro.datasets import CheckpointStoreDataset
from deepfake_kedro.pipelines.ensemble_training import create_pipeline
from deepfake_kedro.training import TrainingConfig, build_model, predict_proba
from deepfake_kedro.training.inputs import features_for_rows


def branch_table(manifest, dim: int, signal: float, seed: int) -> dict:
    rows = manifest.drop_duplicates("content_hash")
    rng = np.random.default_rng(seed)
    label = (rows["label"] == "fake").to_numpy(dtype=np.float32)
    features = rng.normal(size=(len(rows), dim)).astype(np.float32)
    features[:, 0] += signal * label
    return {
        "content_hash": rows["content_hash"].to_numpy(dtype=str),
        "features": features,
        "identity": np.array(
            json.dumps({"kind": "x", "arch": f"a{dim}", "weights": "none:seed=0"})
        ),
        "backbone": np.array(json.dumps({"kind": "spectral", "image_size": 64})),
    }


def run(manifest, tmp_path, params: TrainingConfig) -> dict:
    pipeline = create_pipeline()
    outputs = {name: MemoryDataset(copy_mode="assign") for name in pipeline.all_outputs()}
    catalog = DataCatalog(
        {
            "split_manifest": MemoryDataset(manifest),
            "dataset_fingerprint": MemoryDataset({"fingerprint": "f" * 64}),
            "training_state": CheckpointStoreDataset(filepath=str(tmp_path / "state.pt")),
            "params:ensemble_training": MemoryDataset(params),
            "resnet.model_input_features": MemoryDataset(branch_table(manifest, 40, 0.0, 1)),
            "clip.model_input_features": MemoryDataset(branch_table(manifest, 8, 1.0, 2)),
            "spectral.model_input_features": MemoryDataset(branch_table(manifest, 12, 4.0, 3)),
        }
        | outputs
    )
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


def test_training_node_outputs_checkpoint_metrics_curves_and_tags(split_manifest, tmp_path):
    params = TrainingConfig(epochs=8, patience=4, batch_size=16, device="cpu")
    out = run(split_manifest, tmp_path, params)

    checkpoint = out["fusion_checkpoint"]
    assert checkpoint["dataset_fingerprint"] == "f" * 64
    # ensemble_training.branches null: every branch of the pipeline, in its order
    assert checkpoint["config"]["branches"] == ["resnet", "clip", "spectral"]
    assert set(checkpoint["backbones"]) == {"resnet", "clip", "spectral"}
    test = split_manifest[split_manifest["split"] == "test"]
    tables = {
        "resnet": branch_table(split_manifest, 40, 0.0, 1),
        "clip": branch_table(split_manifest, 8, 1.0, 2),
        "spectral": branch_table(split_manifest, 12, 4.0, 3),
    }
    scores = predict_proba(
        build_model(checkpoint), features_for_rows(test, tables, checkpoint["config"]["branches"])
    )
    assert scores.shape == (len(test),) and ((scores >= 0) & (scores <= 1)).all()

    metrics = out["training_metrics"]
    assert [m["step"] for m in metrics["val_auc"]] == sorted(m["step"] for m in metrics["val_auc"])
    assert metrics["best_val_auc"]["value"] == pytest.approx(checkpoint["best_metric"])
    assert isinstance(out["training_curves"], Figure)
    assert out["training_tags"]["dataset_fingerprint"] == "f" * 64
    assert (tmp_path / "state.pt").exists()  # saved every epoch, for resume


def test_resume_continues_from_the_saved_state(split_manifest, tmp_path):
    short = TrainingConfig(epochs=3, patience=50, batch_size=16, device="cpu")
    run(split_manifest, tmp_path, short)
    resumed = run(split_manifest, tmp_path, short.model_copy(update={"epochs": 5, "resume": True}))
    steps = [m["step"] for m in resumed["training_metrics"]["val_auc"]]
    assert max(steps) == 5 and len(steps) == 5  # history carried over, 2 more epochs


def test_training_branch_without_features_is_a_clear_error(split_manifest, tmp_path):
    params = TrainingConfig(branches=["resnet", "face"], epochs=2, batch_size=16, device="cpu")
    with pytest.raises(ValueError, match="'face' is in ensemble_training.branches but has no") as info:
        run(split_manifest, tmp_path, params)
    assert "feature_extraction.backbones" in str(info.value)
