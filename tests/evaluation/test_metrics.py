"""Binary metrics: known answers on tiny inputs, threshold from val, clear input errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from deepfake_kedro.evaluation.metrics import (
    binary_metrics,
    bootstrap_auc_ci,
    choose_threshold,
    curves,
    equal_error_rate,
    expected_calibration_error,
    metrics_by_family,
)

# Reals 0.1 0.2 0.3 0.6, fakes 0.4 0.7 0.8 0.9: at >= 0.6, FPR = FNR = 1/4 exactly.
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)


def test_perfect_scores_give_auc_1_and_eer_0():
    y, s = [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]
    result = binary_metrics(y, s, threshold=0.5, bootstrap_samples=100)
    assert result["auc"] == 1 and result["eer"] == 0
    assert result["accuracy"] == result["f1"] == result["precision"] == result["recall"] == 1
    assert (result["n"], result["n_real"], result["n_fake"]) == (4, 2, 2)
    # The threshold sits in the middle of the gap between the classes.
    assert equal_error_rate(y, s) == (0.0, pytest.approx(0.5))


def test_auc_and_average_precision_match_hand_values():
    # Pairs (fake, real): 0.35>0.1, 0.35<0.4, 0.8>both -> 3 of 4 ordered correctly.
    result = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5, bootstrap_samples=100)
    assert result["auc"] == pytest.approx(0.75)
    assert result["average_precision"] == pytest.approx((1 + 2 / 3) / 2)


def test_eer_on_constructed_cases():
    assert equal_error_rate(Y, S) == (pytest.approx(0.25), pytest.approx(0.5))
    # A real and a fake tie at 0.5: the ROC jumps from (0, .5) to (.5, 1); the crossing
    # FPR = FNR lies halfway, at 0.25 (the nearest-point rule would say 0 or 0.5).
    eer, threshold = equal_error_rate([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9])
    assert eer == pytest.approx(0.25)
    assert 0.5 < threshold < 0.9


def test_ece_on_constructed_cases():
    y80 = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(y80, np.full(10, 0.8)) == pytest.approx(0, abs=1e-12)
    assert expected_calibration_error(np.array([1, 0] * 5), np.full(10, 0.9)) == pytest.approx(0.4)
    # Bin 0.2 is calibrated (1 of 5 fake); bin 0.7 holds 5 fakes: |1 - 0.7| * 5/10.
    y = [1, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    s = [0.2] * 5 + [0.7] * 5
    assert expected_calibration_error(y, s) == pytest.approx(0.15)
    assert expected_calibration_error(y, s, n_bins=1) == pytest.approx(abs(0.6 - 0.45))


def test_brier_score():
    assert binary_metrics([0, 1], [0.2, 0.6], 0.5, bootstrap_samples=100)["brier"] == (
        pytest.approx((0.2**2 + 0.4**2) / 2)
    )


def test_bootstrap_ci_contains_auc_narrows_with_n_and_is_seeded():
    y_small, s_small = _synthetic(100, seed=1)
    y_big, s_big = _synthetic(2000, seed=2)
    low_big, high_big = bootstrap_auc_ci(y_big, s_big, n_samples=1000)
    low_small, high_small = bootstrap_auc_ci(y_small, s_small, n_samples=1000)
    assert low_big < roc_auc_score(y_big, s_big) < high_big
    assert low_small < roc_auc_score(y_small, s_small) < high_small
    # The width shrinks like 1/sqrt(n): ~4.5x here.
    assert high_big - low_big < (high_small - low_small) / 2
    assert bootstrap_auc_ci(y_big, s_big, seed=0) == (low_big, high_big)
    assert bootstrap_auc_ci(y_big, s_big, seed=1) != (low_big, high_big)


def test_bootstrap_handles_ties_like_sklearn():
    # Discrete scores with many ties: a 99% interval of 2000 resamples brackets the AUC.
    y, s = _synthetic(300, seed=3)
    s = np.round(s, 1)
    low, high = bootstrap_auc_ci(y, s, n_samples=2000, confidence=0.99)
    auc = roc_auc_score(y, s)
    assert low < auc < high and high - low < 0.2


def test_bootstrap_skips_resamples_lacking_a_class(caplog):
    with caplog.at_level(logging.WARNING, logger="deepfake_kedro.evaluation.metrics"):
        low, high = bootstrap_auc_ci([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9], n_samples=200)
    assert low == high == 1.0
    assert "lacked a class" in caplog.text


def test_threshold_chosen_on_val_is_returned_and_used():
    y_val, s_val = _synthetic(400, seed=4)
    y_test, s_test = _synthetic(400, seed=5)
    threshold = choose_threshold(y_val, s_val)
    assert threshold == equal_error_rate(y_val, s_val)[1]
    result = binary_metrics(y_test, s_test, threshold, bootstrap_samples=100)
    assert result["threshold"] == threshold
    predicted = s_test >= threshold
    assert result["accuracy"] == pytest.approx(np.mean(predicted == y_test))
    assert result["recall"] == pytest.approx(predicted[y_test == 1].mean())


def test_youden_and_f1_thresholds():
    # Youden J = 0.75 at 0.7 (TPR .75, FPR 0) and at 0.4 (TPR 1, FPR .25): the first wins.
    assert choose_threshold(Y, S, "youden") == pytest.approx(0.7)
    # F1 at 0.4 is 8/9 (precision 4/5, recall 1) against 6/7 at 0.7.
    assert choose_threshold(Y, S, "f1") == pytest.approx(0.4)
    with pytest.raises(ValueError, match="allowed: eer, youden, f1"):
        choose_threshold(Y, S, "roc")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: choose_threshold([0, 0, 0], [0.1, 0.2, 0.3]), "validation split has only real"),
        (lambda: binary_metrics([1, 1], [0.7, 0.8], 0.5), "test split has only fake"),
        (lambda: binary_metrics([], [], 0.5), "test split is empty"),
        (lambda: binary_metrics([0, 1], [0.1, np.nan], 0.5), "1 of 2 test scores are NaN"),
        (lambda: binary_metrics([0, 1], [0.1], 0.5), "2 labels but 1 scores"),
        (lambda: binary_metrics([0, 1], [-0.5, 2.0], 0.5), r"probabilities in \[0, 1\]"),
        (lambda: binary_metrics([0, 2], [0.1, 0.9], 0.5), r"0 \(real\) / 1 \(fake\)"),
        (
            lambda: binary_metrics([0, 1], [0.1, 0.9], float("nan")),
            "threshold must be a finite number",
        ),
        (lambda: expected_calibration_error([0, 1], [0.1, 0.9], n_bins=0), "n_bins"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_manifest_label_names_are_accepted():
    assert equal_error_rate(["real", "real", "fake", "fake"], [0.1, 0.2, 0.8, 0.9])[0] == 0


def test_curves_are_json_ready():
    y, s = _synthetic(200, seed=6)
    result = curves(y, s, n_bins=20)
    json.dumps(result, allow_nan=False)
    assert len(result["roc"]["fpr"]) == len(result["roc"]["tpr"])
    assert result["roc"]["fpr"][-1] == result["roc"]["tpr"][-1] == 1
    assert len(result["pr"]["precision"]) == len(result["pr"]["recall"])
    calibration = result["calibration"]
    assert sum(calibration["counts"]) == 200 and len(calibration["bin_centres"]) == 20
    assert calibration["bin_centres"][0] == pytest.approx(0.025)
    empty = [i for i, c in enumerate(calibration["counts"]) if c == 0]
    assert all(calibration["observed_frequency"][i] is None for i in empty)


def test_metrics_by_family():
    frame = pd.DataFrame(
        {
            "label": [0, 0, 0, 0, 1, 1, 1, 1],
            "score": [0.1, 0.2, 0.3, 0.4, 0.8, 0.9, 0.15, 0.6],
            "manipulation": ["none"] * 4 + ["swap", "swap", "gan", "gan"],
        }
    )
    table = metrics_by_family(frame, threshold=0.5).set_index("manipulation")
    assert list(table.index) == ["gan", "swap"]
    assert table.loc["swap", ["auc", "recall", "n", "n_real"]].tolist() == [1, 1, 2, 4]
    # gan: 0.15 beats 1 of 4 reals, 0.6 beats all 4 -> AUC 5/8; one of two above 0.5.
    assert table.loc["gan", "auc"] == pytest.approx(5 / 8)
    assert table.loc["gan", "recall"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="manipulation"):
        metrics_by_family(frame.drop(columns="manipulation"), 0.5)
