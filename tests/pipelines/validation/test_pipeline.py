"""validation on tiny demo data: a real spectral-only model, the gate, robustness, the report."""

from __future__ import annotations

import numpy as np
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deepfake_kedro.evaluation.config import ValidationConfig
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.pipelines.validation import create_pipeline

RUNTIME = ExtractionConfig(batch_size=16, num_workers=0, progress=False)


class KeptDataset(MemoryDataset):
    """Not released by the runner, so the test can read intermediate outputs."""

    def _release(self) -> None:
        pass


def uninformative(checkpoint: dict) -> dict:
    """The same model with its output layer's weights zeroed: one score for every image."""
    state = dict(checkpoint["best_state"])
    for key, value in checkpoint["best_state"].items():
        if key.endswith("weight") and value.ndim == 2 and value.shape[0] == 1:
            state[key] = value * 0
    return {**checkpoint, "best_state": state}


def run(split_manifest, trained, params: ValidationConfig, weak: bool = False) -> dict:
    store, checkpoint, cache = trained
    checkpoint = uninformative(checkpoint) if weak else checkpoint
    pipeline = create_pipeline(branches=["spectral"])
    catalog = DataCatalog(
        {
            "split_manifest": MemoryDataset(split_manifest),
            "raw_images": MemoryDataset(store, copy_mode="assign"),
            "fusion_checkpoint": MemoryDataset(checkpoint, copy_mode="assign"),
            "dataset_fingerprint": MemoryDataset({"fingerprint": "f" * 64}),
            "spectral.feature_cache": MemoryDataset(cache, copy_mode="assign"),
            "params:validation": MemoryDataset(params),
            "params:feature_extraction.runtime": MemoryDataset(RUNTIME),
        }
        | {name: KeptDataset(copy_mode="assign") for name in pipeline.all_outputs()}
    )
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


def test_model_below_threshold_fails_the_gate_with_the_reason(split_manifest, trained):
    params = ValidationConfig(
        bootstrap_samples=200,
        min_group_size=3,
        robustness={"enabled": False},
    )
    out = run(split_manifest, trained, params, weak=True)
    auc = out["validation_performance"]["metrics"]["auc"]
    assert auc == 0.5  # constant scores: well below the default threshold of 0.95
    verdict = out["validation_verdict"]
    assert verdict["passed"] is False
    assert any(
        "test AUC 0.5 is below validation_threshold 0.95" in reason
        for reason in verdict["failed"]
    ), verdict["failed"]
    assert out["validation_robustness"] == {"skipped": "validation.robustness.enabled is false"}
    assert "FAILED" in out["validation_report"]
    assert out["validation_metrics"]["gate_passed"]["value"] == 0.0


def test_threshold_is_chosen_on_val_and_robustness_rescoring_runs(split_manifest, trained):
    params = ValidationConfig(
        bootstrap_samples=200,
        min_group_size=3,
        gate={
            "validation_threshold": 0.0,
            "max_mean_robustness_drop": 1.0,
            "max_worst_robustness_drop": 1.0,
            "max_auc_gap": 1.0,
            "max_equalized_odds_difference": 1.0,
        },
        robustness={"perturbations": {"jpeg": [30], "blur": [2.0]}},
    )
    out = run(split_manifest, trained, params)
    scores = out["model_scores"]
    assert set(scores["split"]) == {"val", "test"}
    performance = out["validation_performance"]
    assert performance["metrics"]["threshold"] == performance["threshold"]
    table = out["validation_robustness"]["table"]
    assert [(row["perturbation"], row["severity"]) for row in table] == [
        ("jpeg", 30),
        ("blur", 2.0),
    ]
    n_test = int((scores["split"] == "test").sum())
    assert len(out["perturbed_scores"]) == 2 * n_test
    # Perturbed images really were re-extracted: their scores differ from the clean ones.
    clean = scores[scores["split"] == "test"]["score"].to_numpy()
    jpeg = out["perturbed_scores"].query("perturbation == 'jpeg'")["score"].to_numpy()
    assert not np.allclose(clean, jpeg)
    assert out["validation_verdict"]["passed"] is True
