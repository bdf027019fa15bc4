"""Fairness report: per-group numbers against hand counts, gaps, small groups, the plot."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from deepfake_kedro.evaluation.fairness import fairness_report

THRESHOLD = 0.5


@pytest.fixture
def frame() -> pd.DataFrame:
    """Group a is perfect; group b has FPR 0.5 and AUC 13/16; group c has 2 images."""
    rows = (
        [("a", 0, s) for s in (0.1, 0.2, 0.3, 0.4)]
        + [("a", 1, s) for s in (0.6, 0.7, 0.8, 0.9)]
        + [("b", 0, s) for s in (0.1, 0.2, 0.6, 0.7)]
        + [("b", 1, s) for s in (0.55, 0.65, 0.8, 0.9)]
        + [("c", 0, 0.9), ("c", 1, 0.1)]
    )
    data = pd.DataFrame(rows, columns=["group_a", "label", "score"])
    data["group_b"] = ["x", "y"] * (len(data) // 2)
    return data


def _groups(report: dict, attribute: str) -> dict[str, dict]:
    return {g["group"]: g for g in report["attributes"][attribute]["by_group"]}


def test_per_group_numbers_match_hand_counts(frame):
    report = fairness_report(frame, THRESHOLD, ["group_a"], min_group_size=4)
    groups = _groups(report, "group_a")
    assert groups["a"] | {"group": None} == {
        "group": None,
        "count": 8,
        "n_real": 4,
        "n_fake": 4,
        "auc": 1.0,
        "fpr": 0.0,
        "fnr": 0.0,
        "selection_rate": 0.5,
        "too_small": False,
    }
    assert (groups["b"]["fpr"], groups["b"]["fnr"]) == (0.5, 0.0)
    assert groups["b"]["selection_rate"] == 0.75
    assert groups["b"]["auc"] == pytest.approx(13 / 16)
    json.dumps(report, allow_nan=False)


def test_gaps_exclude_too_small_groups(frame):
    report = fairness_report(frame, THRESHOLD, ["group_a"], min_group_size=4)
    attribute = report["attributes"]["group_a"]
    # Group c (AUC 0, FPR 1, FNR 1) would dominate both gaps if it were counted.
    assert attribute["too_small"] == ["c"] and _groups(report, "group_a")["c"]["too_small"]
    assert _groups(report, "group_a")["c"]["auc"] == 0.0
    assert attribute["auc_gap"] == pytest.approx(1 - 13 / 16)
    assert attribute["auc_gap_groups"] == ["b", "a"]
    assert attribute["equalized_odds_difference"] == pytest.approx(0.5)
    assert report["max_auc_gap"] == pytest.approx(3 / 16)
    assert report["max_auc_gap_attribute"] == "group_a"
    assert report["max_equalized_odds_difference"] == pytest.approx(0.5)
    assert any("fewer than 4 images" in note for note in attribute["notes"])


def test_fewer_than_two_valid_groups_give_no_gap(frame):
    report = fairness_report(frame, THRESHOLD, ["group_a"], min_group_size=100)
    attribute = report["attributes"]["group_a"]
    assert attribute["auc_gap"] is None and attribute["equalized_odds_difference"] is None
    assert sorted(attribute["too_small"]) == ["a", "b", "c"]
    assert report["max_auc_gap"] is None and report["max_auc_gap_attribute"] is None
    assert any("gaps not computed" in note for note in attribute["notes"])


def test_single_class_group_is_flagged_not_gated(frame):
    reals = pd.DataFrame(
        {"group_a": "d", "label": 0, "score": [0.1, 0.9, 0.9, 0.9], "group_b": "x"}
    )
    report = fairness_report(
        pd.concat([frame, reals], ignore_index=True), THRESHOLD, ["group_a"], min_group_size=4
    )
    groups = _groups(report, "group_a")
    assert groups["d"]["auc"] is None and groups["d"]["fnr"] is None
    assert groups["d"]["fpr"] == 0.75
    assert report["attributes"]["group_a"]["single_class"] == ["d"]
    assert report["attributes"]["group_a"]["equalized_odds_difference"] == pytest.approx(0.5)


def test_intersection_attribute(frame):
    report = fairness_report(frame, THRESHOLD, ["group_a", "group_b"], min_group_size=1)
    assert list(report["attributes"]) == ["group_a", "group_b", "group_a & group_b"]
    groups = _groups(report, "group_a & group_b")
    assert set(groups) == {"a & x", "a & y", "b & x", "b & y", "c & x", "c & y"}
    assert sum(g["count"] for g in groups.values()) == len(frame)
    no_cross = fairness_report(frame, THRESHOLD, ["group_a", "group_b"], intersection=False)
    assert list(no_cross["attributes"]) == ["group_a", "group_b"]


def test_missing_group_column_names_it_and_the_fix(frame):
    with pytest.raises(ValueError, match=r"\['group_z'\].*validation.group_columns"):
        fairness_report(frame, THRESHOLD, ["group_a", "group_z"])


def test_missing_group_values_form_their_own_group(frame):
    frame.loc[0, "group_a"] = None
    groups = _groups(fairness_report(frame, THRESHOLD, ["group_a"], min_group_size=1), "group_a")
    assert groups["<missing>"]["count"] == 1 and groups["a"]["count"] == 7
