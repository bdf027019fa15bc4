"""Bad retraining parameters fail with the key and the fix."""

import pytest
import yaml
from pydantic import ValidationError

from deepfake_kedro.retraining.config import RetrainingConfig

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_base_parameters_are_valid_and_match_the_defaults():
    params = yaml.safe_load((ROOT / "conf/base/parameters_retraining.yml").read_text())
    config = RetrainingConfig.model_validate(params["retraining"])
    assert config == RetrainingConfig()
    assert config.freshness.max_model_age_days == 7
    assert config.degradation.max_relative_auc_drop == 0.05


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"schedule": {"check_cron": "every day"}}, ["check_cron", "crontab", "0 3 * * *"]),
        ({"schedule": {"timezone": "Mars/Olympus"}}, ["timezone", "IANA"]),
        ({"degradation": {"max_relative_auc_drop": 1.5}}, ["max_relative_auc_drop"]),
        ({"drift": {"method": "ks"}}, ["method", "domain_classifier", "mmd"]),
        ({"freshness": {"max_age": 3}}, ["freshness.max_age", "Extra inputs"]),
    ],
)
def test_bad_values_name_the_key(params, words):
    with pytest.raises(ValidationError) as error:
        RetrainingConfig.model_validate(params)
    for word in words:
        assert word in str(error.value)
