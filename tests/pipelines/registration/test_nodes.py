"""registration nodes: the registration request built from validation results, and no champion."""

from __future__ import annotations

import inspect
import json

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deepfake_kedro.pipelines.registration import create_pipeline
from deepfake_kedro.pipelines.registration.nodes import evaluate_champion, prepare_registration
from deepfake_kedro.registry.config import RegistryConfig

FINGERPRINT = {"fingerprint": "f" * 64, "n_images": 60, "newest_captured_at": "2026-01-29T09:56:53Z"}
PASSED = {"passed": True, "failed": [], "summary": "PASSED: 7 checks passed"}
FAILED = {
    "passed": False,
    "failed": ["test AUC 0.81 is below validation_threshold 0.95", "worst robustness drop 0.2 > 0.1"],
    "summary": "FAILED 2 of 7 checks",
}
CHECKPOINT = {
    "backbones": {
        "resnet": {"kind": "resnet", "arch": "resnet50", "weights": "IMAGENET1K_V2", "feature_dim": 2048},
        "spectral": {"kind": "spectral", "arch": "v1", "weights": "none", "feature_dim": 99},
    },
    "mlflow_run_id": "0123abcd",
    "trained_at": "2026-02-01T10:00:00Z",
}
NO_CHAMPION = {"available": False, "reason": "there is no champion yet"}


def results(passed: bool = True) -> dict:
    """validation_results as the validation pipeline writes them (the parts registration reads)."""
    return {
        "metrics": {
            "auc": 0.97,
            "eer": 0.08,
            "balanced_accuracy": 0.9,
            "auc_ci": [0.95, 0.99],  # not a number: not a metric
            "n_test": 12,
        },
        "robustness": {"summary": {"mean_drop": 0.02, "worst_drop": 0.05}},
        "fairness": {"max_auc_gap": 0.03, "max_equalized_odds_difference": None},
        "verdict": {"passed": passed},
        "threshold": 0.42,
        "threshold_method": "youden",
    }


def test_passed_verdict_registers_with_gate_metrics_and_lineage_tags():
    request = prepare_registration(
        PASSED, results(), FINGERPRINT, CHECKPOINT, NO_CHAMPION, RegistryConfig()
    )
    assert request["model_name"] == "deepfake-detector"
    assert request["register"] is True
    assert request["reason"] == "validation passed"
    assert request["verdict"] == PASSED
    assert request["metrics"] == {
        "test_auc": 0.97,
        "test_eer": 0.08,
        "test_balanced_accuracy": 0.9,
        "test_n_test": 12.0,
        "robustness_mean_drop": 0.02,
        "robustness_worst_drop": 0.05,
        "fairness_max_auc_gap": 0.03,
        "gate_passed": 1.0,
    }
    assert request["tags"] == {
        "dataset_fingerprint": "f" * 64,
        "dataset_n_images": 60,
        "dataset_newest_captured_at": "2026-01-29T09:56:53Z",
        "backbones": json.dumps({"resnet": "resnet:resnet50", "spectral": "spectral:v1"}),
        "weights": json.dumps({"resnet": "IMAGENET1K_V2", "spectral": "none"}),
        "operating_threshold": 0.42,
        "threshold_method": "youden",
        "training_run_id": "0123abcd",
        "trained_at": "2026-02-01T10:00:00Z",
    }
    assert request["champion_baseline"] is None


def test_missing_lineage_is_left_out_not_tagged_none():
    checkpoint = {"backbones": CHECKPOINT["backbones"]}  # no run id, no trained_at
    request = prepare_registration(
        PASSED, results(), {"fingerprint": "abc"}, checkpoint, NO_CHAMPION, RegistryConfig()
    )
    tags = request["tags"]
    assert None not in tags.values()
    assert "training_run_id" not in tags and "dataset_n_images" not in tags
    assert tags["dataset_fingerprint"] == "abc"
    assert tags["trained_at"].endswith("Z")  # now, as the checkpoint has no created_at


def test_failed_verdict_does_not_register_and_lists_the_failed_checks():
    request = prepare_registration(
        FAILED, results(passed=False), FINGERPRINT, CHECKPOINT, NO_CHAMPION, RegistryConfig()
    )
    assert request["register"] is False
    assert request["reason"] == (
        "validation failed: test AUC 0.81 is below validation_threshold 0.95; "
        "worst robustness drop 0.2 > 0.1"
    )
    assert request["metrics"]["gate_passed"] == 0.0


def test_failed_verdict_without_checks_falls_back_to_the_summary():
    verdict = {"passed": False, "summary": "FAILED: gate could not run"}
    request = prepare_registration(
        verdict, results(False), FINGERPRINT, CHECKPOINT, NO_CHAMPION, RegistryConfig()
    )
    assert request["reason"] == "validation failed: FAILED: gate could not run"


def test_promotion_metric_must_be_a_validation_metric():
    with pytest.raises(ValueError, match="'test_f1' is not a validation metric") as info:
        prepare_registration(
            PASSED,
            results(),
            FINGERPRINT,
            CHECKPOINT,
            NO_CHAMPION,
            RegistryConfig(promotion_metric="test_f1"),
        )
    assert "choose one of: fairness_max_auc_gap, gate_passed, robustness_mean_drop" in str(info.value)
    assert "test_auc, test_balanced_accuracy, test_eer, test_n_test" in str(info.value)


def test_other_promotion_metric_and_model_name():
    request = prepare_registration(
        PASSED,
        results(),
        FINGERPRINT,
        CHECKPOINT,
        NO_CHAMPION,
        RegistryConfig(model_name="other", promotion_metric="test_eer", greater_is_better=False),
    )
    assert request["model_name"] == "other" and request["register"] is True


def test_champion_evaluation_becomes_the_baseline_on_this_runs_data():
    champion = {
        "available": True,
        "version": "3",
        "metrics": {"test_auc": 0.91, "test_eer": 0.12},
        "threshold": 0.5,
        "features": "cached",
    }
    request = prepare_registration(
        PASSED, results(), FINGERPRINT, CHECKPOINT, champion, RegistryConfig()
    )
    assert request["champion_baseline"] == {
        "version": "3",
        "dataset_fingerprint": "f" * 64,
        "metrics": {"test_auc": 0.91, "test_eer": 0.12},
    }


def test_evaluate_champion_without_a_champion():
    others = list(inspect.signature(evaluate_champion).parameters)[1:]
    # nothing else is read when there is no champion
    assert evaluate_champion(None, **dict.fromkeys(others)) == NO_CHAMPION


def test_prepare_registration_node_in_a_pipeline_slice():
    pipeline = create_pipeline().only_nodes("prepare_registration_node")
    catalog = DataCatalog(
        {
            "validation_verdict": MemoryDataset(PASSED),
            "validation_results": MemoryDataset(results()),
            "dataset_fingerprint": MemoryDataset(FINGERPRINT),
            "fusion_checkpoint": MemoryDataset(CHECKPOINT),
            "champion_evaluation": MemoryDataset(NO_CHAMPION),
            "params:registry": MemoryDataset(RegistryConfig()),
            "registration_request": MemoryDataset(),
        }
    )
    SequentialRunner().run(pipeline, catalog)
    request = catalog.load("registration_request")
    assert request["register"] is True and request["metrics"]["test_auc"] == 0.97
