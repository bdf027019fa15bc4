"""TrainingConfig: defaults, and bad values that fail naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deepfake_kedro.models.fusion import FusionConfig
from deepfake_kedro.training import TrainingConfig


def test_defaults_and_params_dict_round_trip():
    config = TrainingConfig()
    assert config.branches is None  # every branch of feature_extraction.backbones
    assert config.fusion == FusionConfig()
    assert (config.epochs, config.lr_schedule, config.device) == (100, "cosine", "auto")

    params = {"branches": ["clip"], "fusion": {"mode": "late", "proj_dim": 16}, "epochs": 5}
    parsed = TrainingConfig.model_validate(params)
    assert parsed.fusion.mode == "late" and parsed.fusion.proj_dim == 16
    assert TrainingConfig.model_validate(parsed.model_dump(mode="json")) == parsed


@pytest.mark.parametrize(
    ("params", "field", "hint"),
    [
        ({"epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"learning_rate": 0}, "learning_rate", "greater than 0"),
        ({"learning_rate": 2}, "learning_rate", "less than or equal to 1"),
        ({"weight_decay": -0.1}, "weight_decay", "greater than or equal to 0"),
        ({"lr_schedule": "linear"}, "lr_schedule", "'cosine', 'plateau' or 'constant'"),
        ({"device": "tpu"}, "device", "'auto', 'cpu' or 'cuda'"),
        ({"patience": 0}, "patience", "greater than or equal to 1"),
        ({"branches": []}, "branches", "at least one feature branch"),
        ({"branches": ["clip", "resnet", "clip"]}, "branches", "more than once: clip"),
        ({"branches": ["res.net"]}, "branches", "contain no '.'"),
        ({"epoch": 10}, "epoch", "Extra inputs are not permitted"),
        ({"fusion": {"dropout": 1.0}}, "fusion.dropout", "less than 1"),
        (
            {"fusion": {"branch_dropout": -0.1}},
            "fusion.branch_dropout",
            "greater than or equal to 0",
        ),
        ({"fusion": {"mode": "early"}}, "fusion.mode", "'projection', 'late' or 'stacking'"),
        ({"fusion": {"stack_fraction": 1.0}}, "fusion.stack_fraction", "less than 1"),
        ({"fusion": {"proj_dim": 0}}, "fusion.proj_dim", "greater than or equal to 1"),
    ],
)
def test_bad_values_name_the_field(params, field, hint):
    with pytest.raises(ValidationError) as info:
        TrainingConfig.model_validate(params)
    text = str(info.value)
    assert field in text and hint in text


def test_fusion_config_is_frozen():
    config = FusionConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.proj_dim = 8
