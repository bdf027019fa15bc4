"""Freshness, degradation and the decision on hand-made inputs."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from deepfake_kedro.retraining.champion import ChampionInfo
from deepfake_kedro.retraining.checks import (
    check_degradation,
    check_freshness,
    decide,
    decision_metrics,
    select_new_rows,
)
from deepfake_kedro.retraining.config import DegradationConfig, FreshnessConfig

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _manifest(hashes, day="2026-05-01"):
    return pd.DataFrame(
        {"content_hash": hashes, "captured_at": f"{day}T00:00:00Z", "label": "real"}
    )


def _champion(age_days: float, training: pd.DataFrame | None, test_auc=0.9) -> ChampionInfo:
    return ChampionInfo(
        model_name="m",
        version="1",
        run_id="r",
        created_at=NOW - timedelta(days=age_days),
        tags={},
        fingerprint="fp",
        test_auc=test_auc,
        newest_captured_at=datetime(2026, 5, 1, tzinfo=UTC),
        training_manifest=training,
    )


def test_new_rows_are_those_the_champion_did_not_train_on():
    training = _manifest(["a", "b"])
    current = pd.concat([training, _manifest(["c"], "2026-04-01")], ignore_index=True)
    assert select_new_rows(current, _champion(1, training))["content_hash"].tolist() == ["c"]
    # Without its manifest: by date, after its newest training image.
    dated = pd.concat([training, _manifest(["d"], "2026-05-20")], ignore_index=True)
    assert select_new_rows(dated, _champion(1, None))["content_hash"].tolist() == ["d"]
    assert len(select_new_rows(current, None)) == 3


def test_freshness_triggers_on_new_data_only_once_the_champion_is_old():
    training = _manifest(["a", "b"])
    current = pd.concat([training, _manifest(["c"])], ignore_index=True)
    new = current.tail(1)
    config = FreshnessConfig(max_model_age_days=7)
    young = check_freshness(current, new, {"fingerprint": "x"}, _champion(2, training), config, NOW)
    old = check_freshness(current, new, {"fingerprint": "x"}, _champion(9, training), config, NOW)
    nothing = check_freshness(
        training, new.head(0), {"fingerprint": "fp"}, _champion(30, training), config, NOW
    )
    assert not young.triggered and "only 2.0 days old" in young.reason
    assert old.triggered and "1 new labelled images" in old.reason and old.value == 9
    assert not nothing.triggered and "no new labelled data" in nothing.reason
    assert nothing.details["data_changed"] is False


def test_stale_training_data_triggers_when_a_data_age_limit_is_set():
    training = _manifest(["a"])
    config = FreshnessConfig(max_data_age_days=14)  # newest training image: 31 days old
    result = check_freshness(training, training.head(0), {}, _champion(1, training), config, NOW)
    assert result.triggered and "max_data_age_days 14" in result.reason


def test_degradation_compares_with_the_recorded_test_auc():
    rows = pd.DataFrame({"label": ["real"] * 6 + ["fake"] * 6})
    good = np.r_[np.full(6, 0.2), np.full(6, 0.8)]
    config = DegradationConfig(min_samples=10)
    kept = check_degradation(rows, good, _champion(1, None, test_auc=0.95), config)
    broken = check_degradation(rows, good[::-1].copy(), _champion(1, None, test_auc=0.95), config)
    too_few = check_degradation(rows.head(8), good[:8], _champion(1, None), config)
    assert kept.evaluated and not kept.triggered and kept.value == 1.0
    assert broken.triggered and broken.value == 0.0 and broken.threshold == 0.95 * 0.95
    assert not too_few.evaluated and "too little new labelled data" in too_few.reason
    no_auc = check_degradation(rows, good, _champion(1, None, test_auc=None), config)
    assert not no_auc.evaluated and "gate.test_auc" in no_auc.reason


def test_decision_lists_reasons_and_is_written_even_when_nothing_triggers():
    quiet = [
        {"check": "champion", "triggered": False, "evaluated": True, "reason": "ok", "value": 1.0}
    ]
    decision = decide(quiet, now=NOW)
    assert decision["retrain"] is False and decision["reasons"] == [
        "no check triggered: champion: ok"
    ]
    forced = decide(quiet, force=True, now=NOW)
    assert forced["retrain"] and forced["reasons"][0].startswith("forced")
    assert decision_metrics(forced) == {
        "retrain": 1.0,
        "champion_triggered": 0.0,
        "champion_value": 1.0,
    }
