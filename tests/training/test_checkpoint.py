"""The checkpoint contract: one builder, one loader that keeps old checkpoints loading."""

from __future__ import annotations

import pytest
import torch

from deepfake_kedro.datasets import TorchCheckpointDataset
from deepfake_kedro.training.checkpoint import (
    FORMAT_VERSION,
    from_registry,
    lineage,
    stamp_training_run,
    upgrade,
    with_lineage,
)

STATE = {"format_version": FORMAT_VERSION, "config": {"branches": ["spectral"]}, "best_metric": 0.9}
IDENTITY = {"kind": "spectral", "arch": "v1", "weights": "none", "feature_dim": 12}


def test_with_lineage_records_what_the_model_was_trained_on():
    checkpoint = with_lineage(
        STATE,
        backbones={"spectral": IDENTITY, "unused": {}},
        backbone_configs={"spectral": {"kind": "spectral"}},
        dataset_fingerprint="f" * 64,
    )
    assert checkpoint["backbones"] == {"spectral": IDENTITY}  # only the fused branches
    assert checkpoint["trained_at"].endswith("Z") and checkpoint["dataset_fingerprint"] == "f" * 64
    assert checkpoint["mlflow_run_id"] is None and checkpoint["registry_version"] is None
    stamp_training_run(checkpoint, "run123")
    assert lineage(checkpoint)["training_run_id"] == "run123"


def test_with_lineage_refuses_a_fused_branch_without_identity():
    with pytest.raises(ValueError, match=r"fused branch\(es\) \['spectral'\]"):
        with_lineage(STATE, backbones={}, backbone_configs={}, dataset_fingerprint="f")


def test_a_format_1_checkpoint_still_loads(tmp_path):
    old = {**STATE, "format_version": 1, "created_at": "2026-01-02T03:04:05Z", "x": torch.ones(2)}
    path = tmp_path / "old.pt"
    torch.save(old, path)
    loaded = TorchCheckpointDataset(filepath=str(path)).load()
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["trained_at"] == "2026-01-02T03:04:05Z" and "created_at" not in loaded
    assert loaded["mlflow_run_id"] is None and loaded["registry_model_uri"] is None
    torch.testing.assert_close(loaded["x"], torch.ones(2))


def test_an_unknown_format_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="format_version is 99.*retrain"):
        upgrade({"format_version": 99})


def test_from_registry_names_the_version():
    checkpoint = from_registry(STATE, "7", "models:/deepfake-detector/7")
    assert (checkpoint["registry_version"], checkpoint["registry_model_uri"]) == (
        "7",
        "models:/deepfake-detector/7",
    )
    assert lineage(checkpoint)["registered_model"] == "models:/deepfake-detector/7"


def test_a_format_2_checkpoint_loads_with_no_trained_branches(tmp_path):
    """Before trainable branches every branch was frozen: no branch weights, no loss scaler."""
    from deepfake_kedro.training.checkpoint import trained_branches

    path = tmp_path / "v2.pt"
    torch.save({**STATE, "format_version": 2, "trained_at": "2026-01-02T03:04:05Z"}, path)
    loaded = TorchCheckpointDataset(filepath=str(path)).load()
    assert loaded["format_version"] == FORMAT_VERSION == 3
    assert loaded["branch_state"] == {} and loaded["best_branch_state"] == {}
    assert loaded["scaler_state"] is None
    assert trained_branches(loaded) == []
