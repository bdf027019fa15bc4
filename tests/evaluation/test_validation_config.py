"""ValidationConfig / GateConfig: defaults, and bad values that fail naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deepfake_kedro.evaluation.config import GateConfig, ValidationConfig


def test_defaults_and_params_dict_round_trip():
    config = ValidationConfig()
    assert config.threshold_method == "eer" and config.gate == GateConfig()
    assert config.gate.validation_threshold == 0.95
    assert config.group_columns == ["group_a", "group_b"] and config.robustness == {}

    params = {
        "threshold_method": "youden",
        "gate": {"validation_threshold": 0.9, "min_metrics": {"f1": 0.8}},
        "robustness": {"jpeg_qualities": [30, 70]},
    }
    parsed = ValidationConfig.model_validate(params)
    assert parsed.gate.min_metrics == {"f1": 0.8} and parsed.gate.max_auc_gap == 0.10
    assert parsed.robustness == {"jpeg_qualities": [30, 70]}
    assert ValidationConfig.model_validate(parsed.model_dump(mode="json")) == parsed


@pytest.mark.parametrize(
    ("params", "field", "hint"),
    [
        (
            {"gate": {"validation_threshold": 1.5}},
            "gate.validation_threshold",
            "less than or equal to 1",
        ),
        ({"gate": {"min_metrics": {"auc": 0.9}}}, "gate.min_metrics", "allowed: average_precision"),
        ({"gate": {"max_metrics": {"f1": 0.1}}}, "gate.max_metrics", "allowed: eer, brier, ece"),
        ({"gate": {"min_metrics": {"f1": 2}}}, "gate.min_metrics.f1", "less than or equal to 1"),
        ({"gate": {"max_auc_gap": -0.1}}, "gate.max_auc_gap", "greater than or equal to 0"),
        ({"gate": {"max_mean_robustness_drop": 3}}, "gate.max_mean_robustness_drop", "less than"),
        ({"gate": {"treshold": 0.9}}, "gate.treshold", "Extra inputs are not permitted"),
        ({"threshold_method": "roc"}, "threshold_method", "'eer', 'youden' or 'f1'"),
        ({"bootstrap_samples": 50}, "bootstrap_samples", "greater than or equal to 100"),
        ({"confidence": 1.0}, "confidence", "less than 1"),
        ({"calibration_bins": 0}, "calibration_bins", "greater than or equal to 1"),
        ({"min_group_size": 0}, "min_group_size", "greater than or equal to 1"),
        ({"group_columns": ["a", "a"]}, "group_columns", "more than once: a"),
        ({"group_columns": [""]}, "group_columns", "non-empty"),
        ({"validation_threshold": 0.9}, "validation_threshold", "Extra inputs are not permitted"),
    ],
)
def test_bad_values_name_the_field(params, field, hint):
    with pytest.raises(ValidationError) as info:
        ValidationConfig.model_validate(params)
    text = str(info.value)
    assert field in text and hint in text
