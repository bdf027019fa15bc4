"""RegistryConfig: defaults and bad values fail before a run starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deepfake_kedro.registry.config import RegistryConfig


def test_defaults_match_the_design():
    config = RegistryConfig()
    assert config.model_name == "deepfake-detector"
    assert (config.promotion_metric, config.promotion_margin) == ("test_auc", 0.0)
    assert config.keep_versions == 10 and config.archive_dir is None
    assert not config.allow_different_test_data and config.greater_is_better


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"promotion_margin": -0.1}, "promotion_margin"),
        ({"promotion_margin": float("nan")}, "promotion_margin"),
        ({"keep_versions": 0}, "keep_versions"),
        ({"keep_version": 3}, "keep_version"),
        ({"model_name": ""}, "model_name"),
        ({"model_name": "it's"}, "single quote"),
    ],
)
def test_bad_values_name_the_field(params, field):
    with pytest.raises(ValidationError, match=field):
        RegistryConfig.model_validate(params)
