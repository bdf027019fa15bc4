import logging

import pytest
import torch
from pydantic import ValidationError

from deepfake_kedro.features import ExtractionConfig, resolve_device, resolve_precision
from deepfake_kedro.features import device as device_module

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@no_cuda
def test_auto_device_falls_back_to_cpu_with_a_log(caplog):
    with caplog.at_level(logging.WARNING, logger="deepfake_kedro.features"):
        assert resolve_device("auto") == torch.device("cpu")
    assert "falling back to CPU" in caplog.text


@no_cuda
def test_cuda_requested_but_absent_names_the_key_and_fix():
    with pytest.raises(RuntimeError, match=r"feature_extraction\.device.*'auto' or 'cpu'"):
        resolve_device("cuda")


@no_cuda
def test_cuda_absent_names_the_callers_key_and_is_also_a_value_error():
    with pytest.raises(ValueError, match=r"ensemble_training\.device.*CUDA is not available"):
        resolve_device("cuda", key="ensemble_training.device")


def test_unknown_device_lists_allowed_values():
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        resolve_device("tpu")


def test_auto_precision_on_this_cpu_follows_native_bf16():
    native, _ = device_module.cpu_native_bf16()
    expected = torch.bfloat16 if native else None
    assert resolve_precision("auto", torch.device("cpu")) is expected


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, None)])
def test_auto_precision_on_cpu(monkeypatch, caplog, native, expected):
    monkeypatch.setattr(device_module, "cpu_native_bf16", lambda: (native, "detected"))
    with caplog.at_level(logging.INFO, logger="deepfake_kedro.features"):
        assert resolve_precision("auto", torch.device("cpu")) is expected
    assert "precision=auto on cpu" in caplog.text


def test_explicit_precisions_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(
        ValueError, match=r"fp16.*only supported on CUDA.*feature_extraction\.precision"
    ):
        resolve_precision("fp16", cpu)


def test_config_validates_before_a_run():
    assert ExtractionConfig().batch_size == 32
    with pytest.raises(ValidationError, match="shard_index=3 is out of range for num_shards=3"):
        ExtractionConfig(shard_index=3, num_shards=3)
    with pytest.raises(ValidationError, match="batch_sise"):
        ExtractionConfig.model_validate({"batch_sise": 8})
    with pytest.raises(ValidationError, match="precision"):
        ExtractionConfig(precision="int8")
    with pytest.raises(ValidationError, match="batch_size"):
        ExtractionConfig(batch_size=0)
