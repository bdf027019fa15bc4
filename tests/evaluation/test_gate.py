"""Validation gate: verdicts and human reasons for each kind of check."""

from __future__ import annotations

import json

import pytest

from deepfake_kedro.evaluation.config import GateConfig
from deepfake_kedro.evaluation.gate import evaluate_gate

METRICS = {
    "auc": 0.97,
    "auc_ci_low": 0.95,
    "average_precision": 0.96,
    "accuracy": 0.91,
    "f1": 0.9,
    "precision": 0.92,
    "recall": 0.88,
    "eer": 0.08,
    "brier": 0.07,
    "ece": 0.03,
}
ROBUSTNESS = {"mean_drop": 0.02, "worst_drop": 0.06, "worst_case": "jpeg q=30"}
FAIRNESS = {
    "attributes": {"group_a": {"auc_gap_groups": ["a1", "a0"]}},
    "max_auc_gap": 0.04,
    "max_auc_gap_attribute": "group_a",
    "max_equalized_odds_difference": 0.1,
    "max_equalized_odds_difference_attribute": "group_a",
    "min_group_size": 30,
}


def _check(verdict: dict, name: str) -> dict:
    return next(c for c in verdict["checks"] if c["name"] == name)


def test_passing_case():
    verdict = evaluate_gate(METRICS, ROBUSTNESS, FAIRNESS, GateConfig())
    assert verdict["passed"] and verdict["failed"] == [] and verdict["skipped"] == []
    assert all(c["passed"] for c in verdict["checks"])
    assert verdict["summary"] == "PASSED: 5 checks passed, 0 skipped"
    json.dumps(verdict, allow_nan=False)


def test_below_threshold_fails_with_both_numbers():
    verdict = evaluate_gate({**METRICS, "auc": 0.912}, ROBUSTNESS, FAIRNESS, GateConfig())
    assert not verdict["passed"]
    assert verdict["failed"] == ["test AUC 0.912 is below validation_threshold 0.95"]
    assert _check(verdict, "auc") | {"reason": None} == {
        "name": "auc",
        "value": 0.912,
        "limit": 0.95,
        "comparison": ">=",
        "passed": False,
        "reason": None,
    }
    assert verdict["summary"].startswith("FAILED 1 of 5 checks: test AUC 0.912")
    # The per-run override (validation_threshold) lets the same model through.
    relaxed = GateConfig.model_validate({"validation_threshold": 0.9})
    assert evaluate_gate({**METRICS, "auc": 0.912}, ROBUSTNESS, FAIRNESS, relaxed)["passed"]


def test_rounding_never_hides_a_failure():
    verdict = evaluate_gate({**METRICS, "auc": 0.9496}, None, None, GateConfig())
    assert verdict["failed"] == ["test AUC 0.9496 is below validation_threshold 0.95"]


@pytest.mark.parametrize(
    "key", ["average_precision", "accuracy", "f1", "precision", "recall", "auc_ci_low"]
)
def test_each_optional_minimum(key):
    config = GateConfig(min_metrics={key: 0.99})
    verdict = evaluate_gate(METRICS, ROBUSTNESS, FAIRNESS, config)
    assert not verdict["passed"]
    assert verdict["failed"] == [f"test {key} {METRICS[key]} is below min_metrics.{key} 0.99"]
    config = GateConfig(min_metrics={key: METRICS[key]})
    assert evaluate_gate(METRICS, ROBUSTNESS, FAIRNESS, config)["passed"]


@pytest.mark.parametrize("key", ["eer", "brier", "ece"])
def test_each_optional_maximum(key):
    verdict = evaluate_gate(METRICS, ROBUSTNESS, FAIRNESS, GateConfig(max_metrics={key: 0.01}))
    assert verdict["failed"] == [f"test {key} {METRICS[key]} exceeds max_metrics.{key} 0.01"]


def test_robustness_none_is_skipped_not_failed():
    verdict = evaluate_gate(METRICS, None, FAIRNESS, GateConfig())
    assert verdict["passed"]
    for name in ("mean_robustness_drop", "worst_robustness_drop"):
        check = _check(verdict, name)
        assert check["passed"] is None and "skipped" in check["reason"]
    assert verdict["summary"] == "PASSED: 3 checks passed, 2 skipped"


def test_robustness_over_limits_fails_naming_the_worst_case():
    robustness = {"mean_drop": 0.081, "worst_drop": 0.21, "worst_case": "jpeg q=30"}
    verdict = evaluate_gate(METRICS, robustness, FAIRNESS, GateConfig())
    assert verdict["failed"] == [
        "mean AUC drop under the gated perturbations 0.081 exceeds max_mean_robustness_drop 0.05 "
        "(worst: jpeg q=30, 0.21)",
        "worst AUC drop under the gated perturbations 0.21 exceeds max_worst_robustness_drop 0.15 "
        "(jpeg q=30)",
    ]


def test_fairness_over_limits_fails():
    fairness = {**FAIRNESS, "max_auc_gap": 0.18, "max_equalized_odds_difference": 0.5}
    verdict = evaluate_gate(METRICS, ROBUSTNESS, fairness, GateConfig())
    assert verdict["failed"] == [
        "largest per-group AUC gap 0.18 exceeds max_auc_gap 0.1 (group_a: a1 vs a0)",
        "largest equalized-odds difference 0.5 exceeds max_equalized_odds_difference 0.2 (group_a)",
    ]


def test_fairness_gap_null_or_absent_is_skipped():
    fairness = {**FAIRNESS, "max_auc_gap": None, "max_auc_gap_attribute": None}
    verdict = evaluate_gate(METRICS, ROBUSTNESS, fairness, GateConfig())
    assert verdict["passed"]
    check = _check(verdict, "max_auc_gap")
    assert check["passed"] is None and "at least 30 test images" in check["reason"]
    verdict = evaluate_gate(METRICS, ROBUSTNESS, None, GateConfig())
    assert _check(verdict, "max_equalized_odds_difference")["passed"] is None


def test_nan_or_missing_values_fail():
    verdict = evaluate_gate({**METRICS, "auc": float("nan")}, ROBUSTNESS, FAIRNESS, GateConfig())
    assert verdict["failed"] == ["test AUC is NaN, so validation_threshold 0.95 is not met"]
    assert _check(verdict, "auc")["value"] is None
    json.dumps(verdict, allow_nan=False)

    robustness = {**ROBUSTNESS, "mean_drop": float("nan")}
    assert not evaluate_gate(METRICS, robustness, FAIRNESS, GateConfig())["passed"]
    # Robustness enabled but no condition gave an AUC: a failure, not a skip.
    empty = {"mean_drop": None, "worst_drop": None, "worst_case": None}
    verdict = evaluate_gate(METRICS, empty, FAIRNESS, GateConfig())
    assert len(verdict["failed"]) == 2 and "was not computed" in verdict["failed"][0]

    verdict = evaluate_gate({"auc": 0.99}, None, None, GateConfig(min_metrics={"f1": 0.5}))
    assert verdict["failed"] == ["test f1 is missing from the validation results"]


def test_config_may_be_a_params_dict():
    verdict = evaluate_gate(METRICS, None, None, {"validation_threshold": 0.99})
    assert not verdict["passed"]


def test_robustness_with_no_gated_level_is_skipped_not_failed():
    summary = {"n_gated_levels": 0, "mean_drop": None, "worst_drop": None, "worst_case": None}
    verdict = evaluate_gate({"auc": 0.99}, summary, None, GateConfig())
    skipped = [c for c in verdict["checks"] if c["name"].endswith("robustness_drop")]
    assert [c["passed"] for c in skipped] == [None, None]
    assert "reported only" in skipped[0]["reason"] and verdict["passed"] is True
