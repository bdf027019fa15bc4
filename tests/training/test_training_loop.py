"""Fusion training on synthetic branches: quality, modes, determinism, early stopping, resume."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepfake_kedro.models.fusion import FusionConfig
from deepfake_kedro.training import (
    TrainingConfig,
    build_model,
    plot_training_curves,
    predict_proba,
    train_fusion,
)
from deepfake_kedro.training.checkpoint import FORMAT_VERSION

BRANCHES = ["informative", "noise", "weak"]


class Interrupted(Exception):
    """Raised from on_epoch_end to simulate a crash after an epoch was persisted."""


def _config(**overrides) -> TrainingConfig:
    values = {"branches": BRANCHES, "epochs": 40, "patience": 10, "seed": 0, "device": "cpu"}
    values.update(overrides)
    return TrainingConfig.model_validate(values)


def _roundtrip(checkpoint: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _naive_concat_auc(train, y_train, val, y_val, config: TrainingConfig) -> float:
    """Best val AUC of one Linear on the raw concatenated branches, same optimiser and batches."""
    x = torch.from_numpy(np.hstack([train[b] for b in BRANCHES]))
    xv = torch.from_numpy(np.hstack([val[b] for b in BRANCHES]))
    y = torch.from_numpy(y_train).float()
    torch.manual_seed(config.seed)
    linear = torch.nn.Linear(x.shape[1], 1)
    optimizer = torch.optim.AdamW(
        linear.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    best = 0.0
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=shuffle)
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                linear(x[idx]).squeeze(-1), y[idx]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            best = max(best, roc_auc_score(y_val, linear(xv).squeeze(-1).numpy()))
    return best


@pytest.fixture(scope="module")
def projection_run(synthetic):
    train, y_train, val, y_val = synthetic
    return train_fusion(train, y_train, val, y_val, _config())


def test_projection_fusion_is_not_drowned_by_the_noise_branch(synthetic, projection_run):
    train, y_train, val, y_val = synthetic
    naive = _naive_concat_auc(train, y_train, val, y_val, _config())
    fused = projection_run.best_val_auc
    logging.getLogger(__name__).info("projection AUC %.4f vs naive concat %.4f", fused, naive)
    assert fused > 0.9
    assert fused > naive + 0.05


@pytest.mark.parametrize("mode", ["projection", "late", "stacking"])
def test_each_mode_trains_and_predicts(synthetic, projection_run, mode):
    train, y_train, val, y_val = synthetic
    result = (
        projection_run
        if mode == "projection"
        else train_fusion(train, y_train, val, y_val, _config(fusion=FusionConfig(mode=mode)))
    )
    model = build_model(result.checkpoint)
    proba = predict_proba(model, val, batch_size=64)

    assert proba.shape == (len(y_val),) and proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc_score(y_val, proba) == pytest.approx(result.best_val_auc, abs=1e-6)
    assert result.best_val_auc > 0.9
    assert result.history[result.best_epoch - 1].val_auc == result.best_val_auc

    weights = model.branch_weights()
    assert list(weights) == BRANCHES
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(w >= 0 for w in weights.values())
    if mode != "projection":  # fitted on held-out rows, the memorising noise branch loses
        assert max(weights, key=weights.get) == "informative"
        assert weights["noise"] < 0.2


def test_same_seed_is_bit_identical_and_other_seed_differs(synthetic):
    train, y_train, val, y_val = synthetic
    config = _config(epochs=6, fusion=FusionConfig(mode="stacking"))
    rng_before = torch.get_rng_state()
    deterministic_before = torch.are_deterministic_algorithms_enabled()

    first = train_fusion(train, y_train, val, y_val, config)
    second = train_fusion(train, y_train, val, y_val, config)
    other = train_fusion(train, y_train, val, y_val, config.model_copy(update={"seed": 1}))

    assert first.history == second.history
    _assert_same_state(first.checkpoint["model_state"], second.checkpoint["model_state"])
    _assert_same_state(first.checkpoint["best_state"], second.checkpoint["best_state"])
    assert [h.train_loss for h in other.history] != [h.train_loss for h in first.history]
    assert not torch.equal(
        other.checkpoint["model_state"]["encoders.informative.proj.weight"],
        first.checkpoint["model_state"]["encoders.informative.proj.weight"],
    )
    # The caller's global state is left as it was.
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before


def test_early_stopping_keeps_the_best_epoch(make_features):
    train, y_train = make_features(300, seed=2, shift=3.0)  # separable: val AUC saturates at 1
    val, y_val = make_features(100, seed=3, shift=3.0)
    seen: list[dict] = []
    config = _config(
        epochs=200, patience=4, lr_schedule="plateau", fusion=FusionConfig(mode="late")
    )

    result = train_fusion(train, y_train, val, y_val, config, on_epoch_end=seen.append)
    lrs = [h.lr for h in result.history]
    assert lrs[-1] < config.learning_rate  # the plateau schedule halved it once AUC stalled

    assert result.stopped_early and result.checkpoint["stopped_early"]
    assert len(result.history) == result.best_epoch + config.patience < config.epochs
    assert [c["epoch"] for c in seen] == [h.epoch for h in result.history]
    assert result.best_val_auc == max(h.val_auc for h in result.history)
    # The checkpoints handed out are snapshots, and best_state is the best epoch's weights.
    _assert_same_state(result.checkpoint["best_state"], seen[result.best_epoch - 1]["model_state"])
    assert not torch.equal(
        seen[result.best_epoch - 1]["model_state"]["encoders.noise.proj.weight"],
        seen[-1]["model_state"]["encoders.noise.proj.weight"],
    )


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", [1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1]),
        ("cosine", [1 / 3, 2 / 3, 1, 0.9141, 0.6891, 0.4109, 0.1859, 0.1]),
    ],
)
def test_learning_rate_warms_up_then_follows_the_schedule(synthetic, schedule, expected):
    config = _config(
        epochs=8, warmup_epochs=2, patience=50, lr_schedule=schedule, class_balance=False
    )
    history = train_fusion(*synthetic, config).history
    assert [h.lr / config.learning_rate for h in history] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("mode", "schedule"), [("projection", "cosine"), ("stacking", "plateau")])
def test_resumed_run_matches_uninterrupted_run(synthetic, mode, schedule):
    train, y_train, val, y_val = synthetic
    config = _config(
        epochs=12,
        patience=50,
        warmup_epochs=2,
        lr_schedule=schedule,
        fusion=FusionConfig(mode=mode),
    )
    full = train_fusion(train, y_train, val, y_val, config)

    saved: list[dict] = []

    def crash_after_epoch_5(checkpoint: dict) -> None:
        saved.append(_roundtrip(checkpoint))  # what the caller would persist
        if checkpoint["epoch"] == 5:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_fusion(train, y_train, val, y_val, config, on_epoch_end=crash_after_epoch_5)
    resumed = train_fusion(
        train,
        y_train,
        val,
        y_val,
        config.model_copy(update={"resume": True}),
        resume_from=saved[-1],
    )

    assert saved[-1]["epoch"] == 5
    assert resumed.history == full.history
    assert (resumed.best_epoch, resumed.best_val_auc) == (full.best_epoch, full.best_val_auc)
    _assert_same_state(resumed.checkpoint["best_state"], full.checkpoint["best_state"])
    _assert_same_state(resumed.checkpoint["model_state"], full.checkpoint["model_state"])


def test_resume_of_a_finished_run_returns_it_and_more_epochs_continue(synthetic):
    train, y_train, val, y_val = synthetic
    config = _config(epochs=3, patience=50)
    done = train_fusion(train, y_train, val, y_val, config).checkpoint
    calls: list[dict] = []

    again = train_fusion(
        train, y_train, val, y_val, config, resume_from=done, on_epoch_end=calls.append
    )
    longer = train_fusion(
        train, y_train, val, y_val, config.model_copy(update={"epochs": 5}), resume_from=done
    )

    assert calls == [] and len(again.history) == 3
    assert [h.epoch for h in longer.history] == [1, 2, 3, 4, 5]
    assert longer.history[:3] == again.history


def test_resume_with_a_different_config_names_what_differs(synthetic):
    train, y_train, val, y_val = synthetic
    config = _config(epochs=2)
    checkpoint = train_fusion(train, y_train, val, y_val, config).checkpoint

    changed = config.model_copy(update={"fusion": FusionConfig(proj_dim=32), "learning_rate": 0.01})
    with pytest.raises(ValueError, match=r"fusion\.proj_dim: checkpoint 64, config 32") as info:
        train_fusion(train, y_train, val, y_val, changed, resume_from=checkpoint)
    assert "learning_rate" in str(info.value)

    wider = {**train, "weak": np.zeros((600, 51), np.float32)}
    wider_val = {**val, "weak": np.zeros((200, 51), np.float32)}
    with pytest.raises(ValueError, match="branch_dims"):
        train_fusion(wider, y_train, wider_val, y_val, config, resume_from=checkpoint)


def test_checkpoint_round_trips_and_rebuilds_the_best_model(synthetic, projection_run):
    _, _, val, _ = synthetic
    checkpoint = _roundtrip(projection_run.checkpoint)  # weights_only=True: plain types only

    assert checkpoint["format_version"] == FORMAT_VERSION
    assert checkpoint["config"] == _config().model_dump(mode="json")
    assert checkpoint["branch_dims"] == {"informative": 20, "noise": 500, "weak": 50}
    assert checkpoint["best_metric"] == projection_run.best_val_auc
    assert {
        "model_state",
        "best_state",
        "optimizer_state",
        "scheduler_state",
        "epoch",
        "best_epoch",
        "epochs_without_improvement",
        "history",
        "rng_state",
    } <= checkpoint.keys()

    original, rebuilt = build_model(projection_run.checkpoint), build_model(checkpoint)
    assert not rebuilt.training
    np.testing.assert_array_equal(predict_proba(rebuilt, val), predict_proba(original, val))
    with pytest.raises(ValueError, match="format_version"):
        build_model({**checkpoint, "format_version": 99})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda t, yt, v, yv: ({k: x for k, x in t.items() if k != "weak"}, yt, v, yv),
            r"train .*lack.*'weak'",
        ),
        (
            lambda t, yt, v, yv: ({**t, "noise": t["noise"][:-1]}, yt, v, yv),
            r"train .*'noise' have 599 rows, expected 600",
        ),
        (lambda t, yt, v, yv: (t, yt, v, np.ones_like(yv)), r"val labels hold one class only"),
        (lambda t, yt, v, yv: (t, yt * 2, v, yv), r"train labels must be 0 \(real\) or 1 \(fake\)"),
        (
            lambda t, yt, v, yv: (t, yt, {**v, "weak": v["weak"][:, :10]}, yv),
            r"dims differ between train and val",
        ),
    ],
    ids=["missing-branch", "rows", "single-class-val", "labels", "val-dim"],
)
def test_bad_inputs_fail_before_training(synthetic, mutate, message):
    with pytest.raises(ValueError, match=message):
        train_fusion(*mutate(*synthetic), _config())


def test_non_finite_features_name_branch_and_count(synthetic):
    train, y_train, val, y_val = synthetic
    bad = val["weak"].copy()
    bad[3, :2] = np.nan
    bad[7, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"val features of branch 'weak' hold 3 non-finite value\(s\) in 2 row"
    ):
        train_fusion(train, y_train, {**val, "weak": bad}, y_val, _config())


def test_predict_proba_checks_branches(synthetic, projection_run):
    _, _, val, _ = synthetic
    model = build_model(projection_run.checkpoint)
    with pytest.raises(ValueError, match="lack"):
        predict_proba(model, {"informative": val["informative"]})
    with pytest.raises(ValueError, match="model expects 50"):
        predict_proba(model, {**val, "weak": val["weak"][:, :5]})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_gpu_is_a_clear_error(synthetic):
    with pytest.raises(ValueError, match="CUDA is not available"):
        train_fusion(*synthetic, _config(device="cuda"))


def test_plot_has_loss_and_auc_axes(projection_run):
    fig = plot_training_curves(projection_run.history)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Validation AUC"]
    fig.savefig(io.BytesIO(), format="png")
    with pytest.raises(ValueError, match="history is empty"):
        plot_training_curves([])
