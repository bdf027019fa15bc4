"""Promotion after the data changed: the champion re-scored on the candidate's test data
(``champion_baseline``) against a real SQLite MLflow store, real runs, no mocks."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from registry_helpers import NAME, PASSED, register
from registry_helpers import aliases as _aliases
from registry_helpers import logged_run as _run

from deepfake_kedro.pipelines.registration.nodes import prepare_registration
from deepfake_kedro.registry import operations
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    promote_if_better,
    register_model,
)

OLD, NEW = "fp-old", "fp-new"


def _register(
    client: MlflowClient,
    config: RegistryConfig,
    auc: float,
    fingerprint: str,
    baseline: dict | None = None,
) -> operations.RegistrationResult:
    return register(client, config, auc, fingerprint=fingerprint, champion_baseline=baseline)


def _baseline(auc: float, version: str = "1", fingerprint: str = NEW) -> dict:
    return {
        "version": version,
        "dataset_fingerprint": fingerprint,
        "metrics": {"test_auc": auc, "test_eer": 1 - auc},
    }


@pytest.fixture
def champion(client: MlflowClient) -> str:
    """Version 1, champion, validated on the old data with test_auc 0.95."""
    result = _register(client, RegistryConfig(), 0.95, OLD)
    assert result.promoted and result.version == "1"
    return result.version


def test_without_a_baseline_new_data_is_not_compared(client, champion):
    result = _register(client, RegistryConfig(), 0.99, NEW)
    assert not result.promoted and result.champion == "1"
    assert "differs from champion version 1" in result.reason
    assert _aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}


def test_champion_rescored_lower_on_the_new_data_is_replaced(client, champion):
    # 0.93 is below the champion's own 0.95 tag, but that was measured on other data;
    # on this run's test data the champion scores 0.90.
    result = _register(client, RegistryConfig(), 0.93, NEW, _baseline(0.90))
    assert result.promoted and result.champion == "2", result.reason
    assert "re-scored" in result.reason
    assert "test_auc 0.9300 vs champion 1's 0.9000" in result.reason
    assert _aliases(client) == {CHAMPION: "2", CHALLENGER: "2", PREVIOUS_CHAMPION: "1"}
    assert client.get_model_version(NAME, "2").tags["champion_via"] == "auto"


def test_champion_rescored_higher_stays(client, champion):
    # 0.97 beats the champion's old 0.95 tag, but not its 0.98 on the same data.
    result = _register(client, RegistryConfig(), 0.97, NEW, _baseline(0.98))
    assert not result.promoted and result.champion == "1"
    assert "re-scored" in result.reason and "not better by the margin" in result.reason
    assert _aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}


def test_baseline_comparison_keeps_the_margin_and_direction(client, champion):
    margin = RegistryConfig(promotion_margin=0.02)
    within = _register(client, margin, 0.93, NEW, _baseline(0.92))
    assert not within.promoted and "re-scored" in within.reason
    eer = RegistryConfig(promotion_metric="test_eer", greater_is_better=False)
    lower_eer = _register(client, eer, 0.93, NEW, _baseline(0.92))  # eer 0.07 vs 0.08
    assert lower_eer.promoted and lower_eer.champion == "3", lower_eer.reason


@pytest.mark.parametrize(
    "baseline",
    [
        _baseline(0.50, version="7"),  # another version than the champion
        _baseline(0.50, fingerprint="fp-other"),  # measured on other data than the candidate's
        {"version": "1", "dataset_fingerprint": NEW, "metrics": {"test_eer": 0.5}},  # no test_auc
    ],
    ids=["other-version", "other-fingerprint", "no-promotion-metric"],
)
def test_a_baseline_that_does_not_fit_is_ignored(client, champion, baseline):
    result = _register(client, RegistryConfig(), 0.93, NEW, baseline)
    assert not result.promoted and "differs from champion version 1" in result.reason
    # Allowed to compare across data, the tags decide: 0.93 < 0.95, whatever the baseline says.
    promoted, reason = promote_if_better(
        client, RegistryConfig(allow_different_test_data=True), result.version, baseline
    )
    assert not promoted and "re-scored" not in reason
    assert "test_auc 0.9300 vs champion 1's 0.9500" in reason


def test_promote_if_better_takes_a_baseline_later(client, champion):
    first = _register(client, RegistryConfig(), 0.93, NEW)
    assert not first.promoted
    promoted, reason = promote_if_better(client, RegistryConfig(), first.version, _baseline(0.90))
    assert promoted and "re-scored" in reason
    assert _aliases(client)[CHAMPION] == "2"


def test_a_registration_request_promotes_through_its_baseline(client, champion):
    """prepare_registration's request is what register_model expects (as RegistrationHooks
    passes it): metrics become gate tags, the baseline carries the run's fingerprint."""
    results = {
        "metrics": {"auc": 0.93, "eer": 0.07},
        "robustness": {"summary": {}},
        "fairness": {},
        "verdict": PASSED,
        "threshold": 0.5,
    }
    request = prepare_registration(
        PASSED,
        results,
        {"fingerprint": NEW},
        {"backbones": {}},
        {"available": True, "version": "1", "metrics": {"test_auc": 0.90}},
        RegistryConfig(),
    )
    run_id = _run(client)
    result = register_model(
        client,
        RegistryConfig(),
        model_uri=f"runs:/{run_id}/model",
        verdict=request["verdict"],
        metrics=request["metrics"],
        tags=request["tags"],
        champion_baseline=request["champion_baseline"],
    )
    assert result.promoted and result.champion == "2", result.reason
    assert "re-scored" in result.reason
