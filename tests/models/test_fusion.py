"""FusionHead: shapes per mode, fitted standardisation, branch dropout, branch weights."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from deepfake_kedro.models.fusion import FusionConfig, FusionHead

DIMS = {"a": 6, "b": 30, "c": 4}
MODES = ["projection", "late", "stacking"]


def _features(n: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: 5 * torch.randn(n, d, generator=g) + 3 for name, d in DIMS.items()}


def _head(mode: str, **overrides) -> FusionHead:
    torch.manual_seed(0)
    return FusionHead(DIMS, FusionConfig(mode=mode, proj_dim=8, hidden_dim=16, **overrides))


@pytest.mark.parametrize("mode", MODES)
def test_forward_gives_one_logit_per_row(mode):
    head = _head(mode).eval()
    x = _features()
    logits, branch_logits = head.forward_with_branch_logits(x)
    assert head({**x, "extra": torch.zeros(16, 2)}).shape == (16,)
    assert torch.equal(head(x), logits)
    if mode == "projection":
        assert branch_logits is None
    else:
        assert branch_logits.shape == (16, len(DIMS))


def test_missing_or_misshapen_branch_is_named():
    head = _head("projection")
    x = _features()
    with pytest.raises(ValueError, match="lack branch 'b'"):
        head({"a": x["a"], "c": x["c"]})
    with pytest.raises(
        ValueError, match=r"'c' features have shape \(16, 5\); expected \[rows, 4\]"
    ):
        head({**x, "c": torch.zeros(16, 5)})


def test_fit_normalization_standardises_and_lives_in_the_state_dict():
    head = _head("projection")
    x = _features(n=200)
    x["a"][:, 0] = 7.0  # a constant feature must not divide by zero
    head.fit_normalization(x)
    enc = head.encoders["a"]
    z = (x["a"] - enc.mean) / enc.std
    assert torch.allclose(z[:, 1:].mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(z[:, 1:].std(0, correction=0), torch.ones(5), atol=1e-4)
    assert enc.std[0] == 1.0 and torch.isfinite(head.eval()(x)).all()

    state = head.state_dict()
    assert {"encoders.a.mean", "encoders.a.std", "encoders.b.mean"} <= state.keys()
    fresh = _head("projection")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.eval()(x), head(x))


@pytest.mark.parametrize("mode", MODES)
def test_branch_dropout_only_in_training_and_never_drops_all(mode):
    head = _head(mode, dropout=0.0, branch_dropout=0.9)
    x = _features(n=64)
    head.train()
    first, second = head(x), head(x)
    assert torch.isfinite(first).all() and not torch.equal(first, second)
    head.eval()
    assert torch.equal(head(x), head(x))


@pytest.mark.parametrize("mode", ["late", "stacking"])
def test_detached_branches_train_only_the_fusion_weights(mode):
    head = _head(mode)
    logits, _ = head.forward_with_branch_logits(_features(), detach_branches=True)
    logits.sum().backward()
    assert all(p.grad is not None for p in head.fusion_parameters())
    assert head.encoders["a"].proj.weight.grad is None


@pytest.mark.parametrize("mode", MODES)
def test_branch_weights_are_a_distribution_over_branches(mode):
    weights = _head(mode).branch_weights()
    assert list(weights) == list(DIMS)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(w >= 0 for w in weights.values())
    if mode in ("late", "stacking"):  # both start as the plain average of branch logits
        assert weights == pytest.approx({k: 1 / 3 for k in DIMS})


def test_fusion_parameters_per_mode():
    assert _head("projection").fusion_parameters() == []
    assert len(_head("late").fusion_parameters()) == 1
    assert len(_head("stacking").fusion_parameters()) == 2


@pytest.mark.parametrize(
    ("dims", "message"),
    [({}, "at least one branch"), ({"a.b": 3}, "contain no '.'"), ({"a": 0}, ">= 1")],
)
def test_bad_branch_dims(dims, message):
    with pytest.raises(ValueError, match=message):
        FusionHead(dims, FusionConfig())


def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValidationError, match="dropout"):
        FusionConfig(dropout=1.0)
    with pytest.raises(ValidationError, match="'projection', 'late' or 'stacking'"):
        FusionConfig(mode="early")
    with pytest.raises(ValidationError, match="Extra inputs"):
        FusionConfig(hidden=3)
