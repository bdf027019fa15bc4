"""InferenceConfig: serving-safe defaults, typos and out-of-range values fail early."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deepfake_kedro.inference.config import InferenceConfig


def test_defaults():
    config = InferenceConfig()
    assert config.threshold is None  # validation's operating threshold
    assert config.on_unreadable == "flag"
    assert config.base_dir is None
    assert config.storage_options == {}
    assert config.max_image_mb == 50.0
    assert config.chunk_size == 512
    # a model server: no DataLoader processes, no progress bar
    assert config.runtime.num_workers == 0
    assert config.runtime.progress is False
    assert config.runtime.batch_size == 32


def test_params_dict_is_validated_with_nested_runtime():
    config = InferenceConfig.model_validate(
        {"threshold": 0.25, "on_unreadable": "fail", "runtime": {"batch_size": 4, "device": "cpu"}}
    )
    assert (config.threshold, config.on_unreadable) == (0.25, "fail")
    assert (config.runtime.batch_size, config.runtime.device) == (4, "cpu")


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_bounds_are_allowed(threshold):
    assert InferenceConfig(threshold=threshold).threshold == threshold


@pytest.mark.parametrize("threshold", [-0.01, 1.01, float("nan")])
def test_threshold_outside_0_1_is_rejected(threshold):
    with pytest.raises(ValidationError, match="threshold"):
        InferenceConfig(threshold=threshold)


def test_extra_keys_are_forbidden():
    with pytest.raises(ValidationError, match="treshold"):
        InferenceConfig.model_validate({"treshold": 0.5})
    with pytest.raises(ValidationError, match="runtime.workers"):
        InferenceConfig.model_validate({"runtime": {"workers": 2}})


@pytest.mark.parametrize(
    ("key", "value"),
    [("on_unreadable", "skip"), ("max_image_mb", 0), ("chunk_size", 0)],
)
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ValidationError, match=key):
        InferenceConfig.model_validate({key: value})
