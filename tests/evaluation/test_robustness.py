"""Robustness: configuration, condition grid, AUC table, summary, sample and plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from pydantic import ValidationError

from deepfake_kedro.evaluation.perturbations import DEFAULT_SEVERITIES
from deepfake_kedro.evaluation.robustness import (
    RobustnessConfig,
    perturbation_grid,
    plot_robustness,
    robustness_by_family,
    robustness_summary,
    robustness_table,
    select_images,
)

Y = np.array([0] * 10 + [1] * 10)
CLEAN = np.where(Y == 1, 0.8, 0.2)  # perfectly separated: AUC 1


def _scores() -> dict[tuple[str, float], np.ndarray]:
    half_lost = CLEAN.copy()
    half_lost[15:] = 0.0  # half of the fakes now rank below every real image: AUC 0.5
    reversed_all = 1.0 - CLEAN  # AUC 0
    return {
        ("jpeg", 90.0): CLEAN.copy(),
        ("jpeg", 30.0): half_lost,
        ("blur", 2.0): reversed_all,
    }


def test_table_has_known_aucs_and_drops():
    table = robustness_table(1.0, Y, _scores())
    assert list(table.columns) == ["perturbation", "severity", "auc", "drop", "n", "gated"]
    assert table["gated"].all()  # without a config every condition is gated
    assert table["auc"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert table["drop"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert table["n"].tolist() == [20, 20, 20]
    assert table[["perturbation", "severity"]].values.tolist() == [
        ["jpeg", 90.0],
        ["jpeg", 30.0],
        ["blur", 2.0],
    ]


def test_summary_names_the_worst_case():
    scores = _scores()
    del scores[("blur", 2.0)]
    summary = robustness_summary(robustness_table(1.0, Y, scores), 1.0)
    assert summary == {
        "clean_auc": 1.0,
        "n_gated_levels": 2,
        "mean_drop": pytest.approx(0.25),
        "worst_drop": pytest.approx(0.5),
        "worst_case": "jpeg q=30",
        "n_conditions": 2,
        "per_perturbation": {"jpeg": pytest.approx(0.25)},
        "reported_only": {
            "mean_drop": None, "worst_drop": None, "worst_case": None, "n_conditions": 0,
        },
        "all": {
            "mean_drop": pytest.approx(0.25), "worst_drop": pytest.approx(0.5),
            "worst_case": "jpeg q=30", "n_conditions": 2,
        },
    }


def test_summary_means_per_perturbation():
    summary = robustness_summary(robustness_table(1.0, Y, _scores()), 1.0)
    assert summary["worst_case"] == "blur sigma=2"
    assert summary["mean_drop"] == pytest.approx(0.5)
    assert summary["per_perturbation"] == {"jpeg": pytest.approx(0.25), "blur": pytest.approx(1.0)}


def test_reported_only_levels_stay_in_the_table_but_out_of_the_gated_drops():
    config = RobustnessConfig(
        perturbations={"jpeg": [90, 30], "blur": [2.0]}, reported_only={"jpeg": [30], "blur": [2]}
    )
    table = robustness_table(1.0, Y, _scores(), config)
    assert table["gated"].tolist() == [True, False, False]
    summary = robustness_summary(table, 1.0)
    assert (summary["mean_drop"], summary["worst_case"], summary["n_conditions"]) == (
        pytest.approx(0.0), "jpeg q=90", 1,
    )
    assert summary["reported_only"]["worst_case"] == "blur sigma=2"
    assert summary["reported_only"]["mean_drop"] == pytest.approx(0.75)
    assert summary["all"]["mean_drop"] == pytest.approx(0.5)


def test_reported_only_defaults_and_unknown_names():
    config = RobustnessConfig()
    assert not config.is_gated("jpeg", 30) and config.is_gated("jpeg", 90)
    assert config.is_gated("saturation", 0.0) and not config.is_gated("rescale", 0.25)
    assert RobustnessConfig(reported_only={}).is_gated("jpeg", 30)
    with pytest.raises(ValueError, match="unknown perturbation 'sharpen'"):
        RobustnessConfig(reported_only={"sharpen": [1.0]})


def test_by_family_shows_which_family_a_level_erases():
    clean = pd.DataFrame(
        {"y": Y, "score": CLEAN, "manipulation": ["none"] * 10 + ["a"] * 5 + ["b"] * 5}
    )
    lost_b = CLEAN.copy()
    lost_b[15:] = 0.0  # every "b" fake now ranks below the reals
    perturbed = pd.DataFrame(
        {"perturbation": "jpeg", "severity": 30.0, "score": lost_b}
    )
    table = robustness_by_family(clean, perturbed, RobustnessConfig())
    rows = {r["manipulation"]: r for r in table.to_dict("records")}
    assert rows["a"]["auc"] == pytest.approx(1.0) and rows["a"]["drop"] == pytest.approx(0.0)
    assert rows["b"]["auc"] == pytest.approx(0.0) and rows["b"]["drop"] == pytest.approx(1.0)
    assert not rows["b"]["gated"]


def test_string_labels_are_accepted():
    labels = np.where(Y == 1, "fake", "real")
    table = robustness_table(1.0, labels, _scores())
    assert table["auc"].tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_misaligned_scores_are_refused():
    with pytest.raises(ValueError, match="jpeg q=30: 19 scores for 20 labels"):
        robustness_table(1.0, Y, {("jpeg", 30.0): CLEAN[:-1]})


def test_one_class_gives_undefined_auc_and_empty_summary():
    table = robustness_table(1.0, np.ones(4), {("noise", 5.0): np.linspace(0, 1, 4)})
    assert math.isnan(table["auc"].iloc[0])
    summary = robustness_summary(table, 1.0)
    assert summary["worst_case"] is None and summary["mean_drop"] is None


def test_default_config_uses_the_default_severities_without_sharing_them():
    config = RobustnessConfig()
    assert config.perturbations == DEFAULT_SEVERITIES
    config.perturbations["jpeg"].append(10)
    assert DEFAULT_SEVERITIES["jpeg"] == [90, 75, 50, 30]


def test_grid_lists_every_condition_in_order():
    grid = perturbation_grid(RobustnessConfig())
    assert len(grid) == sum(len(v) for v in DEFAULT_SEVERITIES.values()) == 19
    assert grid[:4] == [("jpeg", 90.0), ("jpeg", 75.0), ("jpeg", 50.0), ("jpeg", 30.0)]
    assert perturbation_grid(RobustnessConfig(enabled=False)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"perturbations": {"sharpen": [1.0]}}, "unknown perturbation 'sharpen'.*allowed: blur"),
        ({"perturbations": {"jpeg": []}}, "'jpeg' has no severities"),
        ({"perturbations": {"jpeg": [0]}}, "out of range"),
        ({"perturbations": {"blur": [1.0, 1.0]}}, "twice"),
        ({"max_image": 10}, "max_image"),
        ({"max_images": 1}, "max_images"),
    ],
)
def test_bad_config_fails_with_the_reason(params, message):
    with pytest.raises(ValidationError, match=message):
        RobustnessConfig.model_validate(params)


def test_select_images_is_stratified_seeded_and_ordered():
    rows = pd.DataFrame({"label": ["real"] * 90 + ["fake"] * 10, "i": range(100)})
    config = RobustnessConfig(max_images=20, seed=3)
    sample = select_images(rows, config)
    assert len(sample) == 20
    assert sample["label"].value_counts().to_dict() == {"real": 18, "fake": 2}
    assert sample["i"].is_monotonic_increasing
    assert sample["i"].tolist() == select_images(rows, config)["i"].tolist()
    assert select_images(rows, RobustnessConfig()) is rows


def test_select_images_keeps_a_rare_class():
    rows = pd.DataFrame({"label": ["real"] * 99 + ["fake"]})
    sample = select_images(rows, RobustnessConfig(max_images=5))
    assert sorted(sample["label"]) == ["fake", "real", "real", "real", "real"]


def test_plot_draws_one_panel_per_perturbation():
    fig = plot_robustness(robustness_table(1.0, Y, _scores()))
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["jpeg", "blur"]
