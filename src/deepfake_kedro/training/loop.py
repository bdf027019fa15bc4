"""Training loop of the fusion head: AdamW, class-balanced BCE, warmup + schedule, early stopping.

``train_fusion`` returns a checkpoint dict (plain tensors, numbers, strings, lists and dicts, so
``torch.load(..., weights_only=True)`` reads it) and hands the same dict to ``on_epoch_end``
after every epoch, so the caller can persist it and an interrupted run can resume bit for bit.
``build_model`` rebuilds the head from a checkpoint's saved config and loads the best weights.

With trainable branches (:mod:`deepfake_kedro.training.trainable`: a pixel branch, a
fine-tuned backbone) the same loop trains them end to end with the head: each step runs the
batch's images through them, next to the frozen branches' cached features; on CUDA in
float16 autocast with a gradient scaler, on the CPU in float32.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from tqdm.auto import tqdm

from deepfake_kedro.features.device import resolve_device
from deepfake_kedro.logging_setup import show_progress_bar
from deepfake_kedro.models.fusion import FusionHead
from deepfake_kedro.training.checkpoint import FORMAT_VERSION, TrainingState, upgrade
from deepfake_kedro.training.config import TrainingConfig
from deepfake_kedro.training.trainable import (
    Branches,
    TrainableInputs,
    TrainingBatches,
    autocast_for,
    embed,
    make_scaler,
    normalization_rows,
    param_groups,
    preprocess_rows,
)

logger = logging.getLogger(__name__)

# Config fields that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = frozenset({"resume", "epochs", "trainable.epochs", "trainable.num_workers"})
_MIN_LR_RATIO = 0.1  # cosine decays to a tenth of the peak (nanoGPT's min_lr)
_PLATEAU_FACTOR = 0.5
_EVAL_BATCH = 4096
# Fusion weights are a handful of parameters of a convex fit on held-out rows; at the branch
# learning rate they would barely leave their initial values before early stopping.
_FUSION_LR_SCALE = 10.0


@dataclass
class EpochMetrics:
    """Metrics of one epoch (epochs count from 1)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    lr: float

    def to_dict(self) -> dict[str, float]:
        """The metrics as a plain dict (for checkpoints and metric loggers)."""
        return asdict(self)


@dataclass
class TrainingResult:
    """Outcome of ``train_fusion``.

    Attributes:
        checkpoint: The last checkpoint; ``best_state`` holds the best epoch's weights.
        history: Metrics of every epoch trained, resumed epochs included.
        best_epoch: Epoch with the best validation AUC.
        best_val_auc: That AUC.
        stopped_early: Whether early stopping ended training before ``epochs``.
        branch_identities: Identity of each trainable branch with its best weights (the
            digest of the trained weights included), keyed by branch.
    """

    checkpoint: dict[str, Any]
    history: list[EpochMetrics]
    best_epoch: int
    best_val_auc: float
    stopped_early: bool = False
    branch_identities: dict[str, dict[str, Any]] = field(default_factory=dict)


def train_fusion(
    train: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    val: Mapping[str, np.ndarray],
    y_val: np.ndarray,
    config: TrainingConfig,
    *,
    trainable: TrainableInputs | None = None,
    resume_from: dict[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> TrainingResult:
    """Train a fusion head on per-branch features, early-stopping on validation AUC.

    Args:
        train: Training features per frozen branch, each [N_train, dim]; extra branches
            are ignored.
        y_train: Training labels, 0 (real) / 1 (fake), shape [N_train].
        val: Validation features per frozen branch, each [N_val, dim].
        y_val: Validation labels, shape [N_val].
        config: Branches (None: every branch of ``train``, in its order, then the trainable
            ones), fusion head and optimisation settings.
        trainable: The branches that learn from pixels, with the images of the training and
            validation rows (one per label); trained end to end with the head, they end
            with the best epoch's weights, marked trained (their identities are in the
            result). ``config.trainable.epochs`` replaces ``epochs`` when there are any.
        resume_from: A checkpoint of an interrupted run with the same config (``epochs`` and
            ``resume`` may differ) and branch dims; training continues after its epoch. The
            caller decides whether to pass one (``config.resume``).
        on_epoch_end: Called after every epoch with the current checkpoint, e.g. to persist it.

    Returns:
        The last checkpoint, the per-epoch history and the best epoch and AUC.

    Raises:
        ValueError: on missing branches, mismatched shapes, bad labels, non-finite features,
            an unavailable device, or a ``resume_from`` that does not match the config.
        FloatingPointError: if training diverges (non-finite validation logits).
    """
    extractors = dict(trainable.extractors) if trainable is not None else {}
    both = sorted(set(extractors) & set(train))
    if both:
        raise ValueError(f"branch(es) {both} are given both as features and as trainable branches")
    if config.branches is None:
        config = config.model_copy(update={"branches": [*train, *extractors]})
    unused = sorted(set(extractors) - set(config.branches))
    if unused:
        raise ValueError(
            f"trainable branch(es) {unused} are not among ensemble_training.branches "
            f"{config.branches}: add them there or disable them"
        )
    extractors = {b: extractors[b] for b in config.branches if b in extractors}
    if extractors and config.trainable.epochs is not None:
        config = config.model_copy(update={"epochs": config.trainable.epochs})
    frozen = [b for b in config.branches if b not in extractors]
    frozen_dims = _check_split(train, y_train, frozen, "train")
    val_dims = _check_split(val, y_val, frozen, "val")
    if val_dims != frozen_dims:
        diff = {
            b: (frozen_dims[b], val_dims[b]) for b in frozen_dims if frozen_dims[b] != val_dims[b]
        }
        raise ValueError(f"feature dims differ between train and val (train, val): {diff}")
    branch_dims = {
        b: frozen_dims[b] if b in frozen_dims else int(extractors[b].feature_dim)
        for b in config.branches
    }
    if trainable is not None and extractors:
        trainable.prepare(len(y_train), len(y_val))

    if resume_from is not None:
        _check_resumable(resume_from, config, branch_dims)
        if _finished(resume_from, config):
            logger.info(
                "Checkpoint at epoch %d is already finished; returning it", resume_from["epoch"]
            )
            return _result(resume_from, extractors)

    device = resolve_device(config.device, key="ensemble_training.device")
    rng_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    # fork_rng: seeding for this run leaves the caller's global RNG state untouched.
    with torch.random.fork_rng(devices=rng_devices):
        if device.type == "cpu":  # bit-identical reruns; CUDA would also need CUBLAS settings
            torch.use_deterministic_algorithms(True)
        try:
            return _train(
                train, y_train, val, y_val, config, branch_dims, device, resume_from,
                on_epoch_end, trainable if extractors else None, extractors,
            )  # fmt: skip
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def _train(
    train: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    val: Mapping[str, np.ndarray],
    y_val: np.ndarray,
    config: TrainingConfig,
    branch_dims: dict[str, int],
    device: torch.device,
    resume_from: dict[str, Any] | None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
    trainable: TrainableInputs | None,
    extractors: dict[str, Any],
) -> TrainingResult:
    torch.manual_seed(config.seed)
    frozen = [b for b in config.branches if b not in extractors]
    x_train = _to_device(train, frozen, device)
    x_val = _to_device(val, frozen, device)
    t_train = torch.tensor(np.asarray(y_train), dtype=torch.float32, device=device)
    t_val = torch.tensor(np.asarray(y_val), dtype=torch.float32, device=device)

    model = FusionHead(branch_dims, config.fusion).to(device)
    branches = Branches(extractors).to(device) if trainable is not None else None
    optimizer = _make_optimizer(model, config, extractors)
    scaler = make_scaler(device, config.trainable.amp and bool(extractors))
    plateau = _make_plateau(optimizer, config)
    shuffle = torch.Generator().manual_seed(config.seed)
    criterion = nn.BCEWithLogitsLoss(pos_weight=_pos_weight(t_train, config))
    stack_rows = None
    if config.fusion.mode != "projection":
        stack_rows = _stack_rows(np.asarray(y_train), config.fusion.stack_fraction, config.seed)
        stack_rows = stack_rows.to(device)

    state: dict[str, Any] = {  # early-stopping state, saved in every checkpoint
        "best_state": {},
        "best_branch_state": {},
        "best_metric": -math.inf,
        "best_epoch": 0,
        "epochs_without_improvement": 0,
        "stopped_early": False,
    }
    history: list[EpochMetrics] = []
    start = 1
    batches = val_pixels = None
    if trainable is not None:
        batches = TrainingBatches(
            trainable, config.seed, config.batch_size, config.trainable.num_workers
        )
        val_pixels = preprocess_rows(trainable, trainable.val_rows)
    if resume_from is None:
        initial = {}
        if trainable is not None:
            # A fixed standardisation from the initial features; the branch learns around it.
            pixels = preprocess_rows(trainable, normalization_rows(trainable, config.seed))
            initial = {b: embed(e, pixels[b], device) for b, e in extractors.items()}
        model.fit_normalization({**x_train, **initial})
    else:
        model.load_state_dict(resume_from["model_state"])
        for name, extractor in extractors.items():
            extractor.load_state_dict(resume_from["branch_state"][name])
        optimizer.load_state_dict(resume_from["optimizer_state"])
        if plateau is not None:
            plateau.load_state_dict(resume_from["scheduler_state"])
        if resume_from.get("scaler_state"):
            scaler.load_state_dict(resume_from["scaler_state"])
        state = {key: resume_from[key] for key in state}
        history = [EpochMetrics(**h) for h in resume_from["history"]]
        _set_rng_state(resume_from["rng_state"], shuffle, device)
        start = int(resume_from["epoch"]) + 1

    logger.info(
        "Training %s fusion head on %s from epoch %d: %d train / %d val rows, branch dims %s, "
        "%d parameters, pos_weight %s",
        config.fusion.mode, device, start, len(t_train), len(t_val), branch_dims,
        sum(p.numel() for p in model.parameters()),
        "off" if criterion.pos_weight is None else f"{criterion.pos_weight.item():.3f}",
    )  # fmt: skip
    if extractors:
        logger.info(
            "Trainable branches (end to end, %s on %s): %s",
            "float16 autocast + loss scaling" if scaler.is_enabled() else "float32", device,
            ", ".join(
                f"{b} ({e.config.kind}, {sum(p.numel() for p in e.parameters()):,} parameters, "
                f"lr x{e.lr_scale:g})"
                for b, e in extractors.items()
            ),
        )  # fmt: skip
    checkpoint: dict[str, Any] = {}
    for epoch in range(start, config.epochs + 1):
        lr = _set_learning_rate(optimizer, epoch, config)
        started = time.perf_counter()
        if branches is None:
            train_loss = train_one_epoch(
                model, criterion, optimizer, x_train, t_train, config.batch_size, shuffle,
                stack_rows,
            )  # fmt: skip
            val_features = x_val
        else:
            train_loss = train_one_epoch_end_to_end(
                model, branches, criterion, optimizer, scaler, x_train, t_train,
                batches.epoch(epoch, torch.randperm(len(t_train), generator=shuffle)),
                stack_rows, device, config, epoch,
            )  # fmt: skip
            val_features = {
                **x_val,
                **{b: embed(e, val_pixels[b], device) for b, e in extractors.items()},
            }
        val_loss, val_auc = evaluate(model, criterion, val_features, t_val)
        if plateau is not None and epoch > config.warmup_epochs:
            plateau.step(val_auc)
        history.append(EpochMetrics(epoch, train_loss, val_loss, val_auc, lr))

        if val_auc > state["best_metric"] + config.min_delta:
            state.update(best_state=_cpu_copy(model.state_dict()), best_metric=val_auc,
                         best_epoch=epoch, epochs_without_improvement=0,
                         best_branch_state=_branch_states(extractors))  # fmt: skip
        else:
            state["epochs_without_improvement"] += 1
        state["stopped_early"] = state["epochs_without_improvement"] >= config.patience
        logger.info(
            "epoch %3d/%d | train loss %.4f | val loss %.4f | val AUC %.4f | lr %.2e | %.1f s%s",
            epoch, config.epochs, train_loss, val_loss, val_auc, lr, time.perf_counter() - started,
            " *" if state["best_epoch"] == epoch else "",
        )  # fmt: skip

        checkpoint: TrainingState = {
            "format_version": FORMAT_VERSION,
            "model_state": _cpu_copy(model.state_dict()),
            "branch_state": _branch_states(extractors),
            "optimizer_state": _cpu_copy(optimizer.state_dict()),
            "scheduler_state": plateau.state_dict() if plateau is not None else None,
            "scaler_state": scaler.state_dict() if scaler.is_enabled() else None,
            "config": config.model_dump(mode="json"),
            "branch_dims": dict(branch_dims),
            "epoch": epoch,
            **state,
            "history": [h.to_dict() for h in history],
            "rng_state": _get_rng_state(shuffle, device),
            "device": str(device),
        }
        if on_epoch_end is not None:
            on_epoch_end(checkpoint)
        if state["stopped_early"]:
            logger.info("Early stopping at epoch %d: no val AUC gain for %d epochs",
                        epoch, config.patience)  # fmt: skip
            break

    logger.info("Best val AUC %.4f at epoch %d", state["best_metric"], state["best_epoch"])
    return _result(checkpoint, extractors)


def train_one_epoch(
    model: FusionHead,
    criterion: nn.BCEWithLogitsLoss,
    optimizer: torch.optim.Optimizer,
    features: dict[str, Tensor],
    labels: Tensor,
    batch_size: int,
    generator: torch.Generator,
    stack_rows: Tensor | None = None,
) -> float:
    """One pass over shuffled training rows; returns the mean fused BCE loss.

    With ``stack_rows`` (``late``/``stacking``) the fused loss on those rows trains only the
    fusion weights, and each branch's own loss on the other rows trains the branches.

    Args:
        model: The fusion head.
        criterion: Class-balanced BCE on logits.
        optimizer: Optimizer of the model's parameters.
        features: Training features per branch, on the model's device.
        labels: 0/1 float labels, on the model's device.
        batch_size: Rows per step.
        generator: CPU generator that orders the rows.
        stack_rows: Boolean mask over training rows held out for the fusion weights.
    """
    model.train()
    n = len(labels)
    order = torch.randperm(n, generator=generator).to(labels.device)
    total = torch.zeros((), device=labels.device)  # summed on device: no sync per step
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        y = labels[idx]
        batch = {k: v[idx] for k, v in features.items()}
        objective, loss = _objective(
            model, criterion, batch, y, stack_rows[idx] if stack_rows is not None else None
        )
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
    return total.item() / n


def train_one_epoch_end_to_end(
    model: FusionHead,
    branches: Branches,
    criterion: nn.BCEWithLogitsLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    features: dict[str, Tensor],
    labels: Tensor,
    batches: Iterable[tuple[Tensor, dict[str, Tensor]]],
    stack_rows: Tensor | None,
    device: torch.device,
    config: TrainingConfig,
    epoch: int,
) -> float:
    """One pass over the training rows, the trainable branches learning with the head.

    Args:
        model: The fusion head.
        branches: The trainable branches (eval mode: frozen BatchNorm statistics, no dropout).
        criterion: Class-balanced BCE on logits.
        optimizer: Optimizer of the head's and the branches' parameters.
        scaler: Loss scaler (enabled for float16 on CUDA).
        features: The frozen branches' training features, on ``device``.
        labels: 0/1 float labels, on ``device``.
        batches: ``(row indices, {branch: uint8 images})`` in this epoch's order.
        stack_rows: Boolean mask of the rows held out for the fusion weights, or None.
        device: Where the model runs.
        config: Batch size and the trainable branches' settings.
        epoch: This epoch (for the progress bar).

    Returns:
        The mean fused BCE loss.
    """
    model.train()
    n = len(labels)
    total = torch.zeros((), device=device)
    # The project's one progress channel: a bar where someone watches; the epoch's log line
    # (with its duration) is written either way.
    bar = tqdm(
        total=n, unit="img", desc=f"epoch {epoch}/{config.epochs}", leave=False,
        disable=not show_progress_bar(True),
    )  # fmt: skip
    try:
        for index, pixels in batches:
            idx = index.to(device)
            y = labels[idx]
            with autocast_for(device, config.trainable.amp):
                embedded = branches({b: p.to(device, non_blocking=True) for b, p in pixels.items()})
                batch = {**{k: v[idx] for k, v in features.items()}, **embedded}
                objective, loss = _objective(
                    model, criterion, batch, y, stack_rows[idx] if stack_rows is not None else None
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(objective).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.detach().float() * len(idx)
            bar.update(len(idx))
    finally:
        bar.close()
    return total.item() / n


def _objective(
    model: FusionHead,
    criterion: nn.BCEWithLogitsLoss,
    batch: dict[str, Tensor],
    y: Tensor,
    held_out: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """The loss to minimise and the fused loss (what is reported), for one batch.

    With ``held_out`` (``late``/``stacking``) the fused loss on those rows trains only the
    fusion weights, and each branch's own loss on the other rows trains the branches.
    """
    logits, branch_logits = model.forward_with_branch_logits(
        batch, detach_branches=held_out is not None
    )
    loss = criterion(logits, y)
    objective = loss
    if held_out is not None and branch_logits is not None:
        held = held_out.float()
        fused_rows = _bce_rows(logits, y, criterion.pos_weight)
        branch_rows = _bce_rows(
            branch_logits, y[:, None].expand_as(branch_logits), criterion.pos_weight
        )
        objective = (held * fused_rows + (1 - held) * branch_rows.mean(dim=1)).mean()
    return objective, loss


@torch.inference_mode()
def evaluate(
    model: FusionHead, criterion: nn.BCEWithLogitsLoss, features: dict[str, Tensor], labels: Tensor
) -> tuple[float, float]:
    """Fused BCE loss and ROC AUC on a labelled split.

    Raises:
        FloatingPointError: if the model produces non-finite logits (training diverged).
    """
    model.eval()
    logits = _logits(model, features, len(labels))
    if not torch.isfinite(logits).all():
        raise FloatingPointError("the fusion head produced non-finite logits; lower learning_rate")
    loss = criterion(logits, labels).item()
    auc = roc_auc_score(labels.cpu().numpy(), logits.float().cpu().numpy())
    return loss, float(auc)


def build_model(checkpoint: Mapping[str, Any]) -> FusionHead:
    """Rebuild the fusion head from a checkpoint's config and load its best weights.

    Args:
        checkpoint: A dict made by ``train_fusion``.

    Returns:
        The head on CPU, in eval mode.
    """
    upgrade(checkpoint)  # refuses a format this code cannot read
    config = TrainingConfig.model_validate(checkpoint["config"])
    model = FusionHead(dict(checkpoint["branch_dims"]), config.fusion)
    model.load_state_dict(checkpoint["best_state"])
    return model.eval()


@torch.inference_mode()
def predict_proba(
    model: FusionHead, features: Mapping[str, np.ndarray], batch_size: int = 1024
) -> np.ndarray:
    """Fake probability per row; puts the model in eval mode.

    Args:
        model: A fusion head, e.g. from ``build_model``.
        features: Features per branch, each [N, dim]; extra branches are ignored.
        batch_size: Rows per forward pass.

    Returns:
        Float64 array of shape [N] with values in [0, 1].
    """
    n = _check_features(features, model.branch_names, "predict", expected_dims=model.branch_dims)
    device = next(model.parameters()).device
    model.eval()
    x = {b: torch.tensor(np.asarray(features[b]), dtype=torch.float32) for b in model.branch_names}
    out = [
        torch.sigmoid(model({b: v[i : i + batch_size].to(device) for b, v in x.items()})).cpu()
        for i in range(0, n, batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def plot_training_curves(history: list[EpochMetrics]) -> Figure:
    """Train/val loss and val AUC per epoch, with the best epoch marked.

    Args:
        history: Per-epoch metrics, e.g. ``TrainingResult.history``.

    Returns:
        A figure with two axes: losses and validation AUC.
    """
    if not history:
        raise ValueError("no epochs to plot: history is empty")
    epochs = [h.epoch for h in history]
    best = max(history, key=lambda h: h.val_auc)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_auc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h.train_loss for h in history], label="train")
    ax_loss.plot(epochs, [h.val_loss for h in history], label="val")
    ax_loss.set(xlabel="epoch", ylabel="BCE loss", title="Loss")
    ax_auc.plot(epochs, [h.val_auc for h in history], color="tab:green")
    ax_auc.set(xlabel="epoch", ylabel="ROC AUC", title="Validation AUC")
    for ax in (ax_loss, ax_auc):
        ax.axvline(best.epoch, color="grey", linestyle="--", label=f"best (epoch {best.epoch})")
        ax.grid(alpha=0.3)
    ax_auc.annotate(
        f"{best.val_auc:.4f}",
        (best.epoch, best.val_auc),
        textcoords="offset points",
        xytext=(4, -12),
    )
    ax_loss.legend()
    return fig


def config_differences(
    checkpoint: Mapping[str, Any], config: TrainingConfig, branch_dims: Mapping[str, int]
) -> list[str]:
    """What keeps ``checkpoint`` from resuming under ``config`` (empty when it can resume).

    ``epochs`` and ``resume`` may differ; every other config field and the branch dims must
    match.
    """
    saved_config = dict(checkpoint.get("config", {}))
    try:  # a state saved before a field existed has that field's default
        saved_config = TrainingConfig.model_validate(saved_config).model_dump(mode="json")
    except ValueError:
        pass  # compared as saved: the differences name what no longer validates
    saved = _flatten(saved_config)
    current = _flatten(config.model_dump(mode="json"))
    diffs = [
        f"{key}: checkpoint {saved.get(key, '<missing>')!r}, config {current.get(key, '<missing>')!r}"
        for key in sorted(saved.keys() | current.keys())
        if key not in _RESUMABLE_CHANGES and saved.get(key) != current.get(key)
    ]
    saved_dims = dict(checkpoint.get("branch_dims", {}))
    if saved_dims != dict(branch_dims):
        diffs.append(f"branch_dims: checkpoint {saved_dims}, data {dict(branch_dims)}")
    return diffs


# --- checks -----------------------------------------------------------------------------------


def _check_split(
    features: Mapping[str, np.ndarray], labels: np.ndarray, branches: list[str], split: str
) -> dict[str, int]:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{split} labels must be 1-D, got shape {y.shape}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(
            f"{split} labels must be 0 (real) or 1 (fake); found {np.unique(y[bad])[:5].tolist()}"
        )
    n_pos = int((y == 1).sum())
    if n_pos == 0 or n_pos == len(y):
        only = "fake" if n_pos else "real"
        raise ValueError(
            f"{split} labels hold one class only ({len(y)} rows, all {only}); both real and fake "
            f"are needed to train and to compute AUC — check the split"
        )
    _check_features(features, branches, split, n_rows=len(y))
    return {b: int(np.shape(features[b])[1]) for b in branches}


def _check_features(
    features: Mapping[str, np.ndarray],
    branches: list[str],
    split: str,
    *,
    n_rows: int | None = None,
    expected_dims: Mapping[str, int] | None = None,
) -> int:
    missing = [b for b in branches if b not in features]
    if missing:
        raise ValueError(
            f"{split} features lack branch(es) {missing}; configured branches {branches}, "
            f"available {sorted(features)}"
        )
    for b in branches:
        x = np.asarray(features[b])
        if x.ndim != 2:
            raise ValueError(
                f"{split} features of branch {b!r} must be 2-D [rows, dim], got {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise ValueError(
                f"{split} features of branch {b!r} must be real numbers, got {x.dtype}"
            )
        if n_rows is None:
            n_rows = len(x)
        if len(x) != n_rows:
            raise ValueError(
                f"{split} features of branch {b!r} have {len(x)} rows, expected {n_rows} "
                f"(one per label / as in branch {branches[0]!r})"
            )
        if expected_dims is not None and x.shape[1] != expected_dims[b]:
            raise ValueError(
                f"{split} features of branch {b!r} have dim {x.shape[1]}; the model expects "
                f"{expected_dims[b]}"
            )
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(
                f"{split} features of branch {b!r} hold {int(bad.sum())} non-finite value(s) "
                f"in {int(bad.any(axis=1).sum())} row(s); fix or drop those images"
            )
    return int(n_rows or 0)


def _check_resumable(
    checkpoint: Mapping[str, Any], config: TrainingConfig, branch_dims: Mapping[str, int]
) -> None:
    upgrade(checkpoint)  # refuses a format this code cannot read
    diffs = config_differences(checkpoint, config, branch_dims)
    if diffs:
        raise ValueError(
            "cannot resume: the checkpoint was trained with a different setup ("
            + "; ".join(diffs)
            + "). Restore those settings or start a fresh run (resume=false)."
        )


def _finished(checkpoint: Mapping[str, Any], config: TrainingConfig) -> bool:
    return bool(checkpoint.get("stopped_early")) or int(checkpoint["epoch"]) >= config.epochs


# --- helpers ----------------------------------------------------------------------------------


def _make_plateau(
    optimizer: torch.optim.Optimizer, config: TrainingConfig
) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if config.lr_schedule != "plateau":
        return None
    # Halve after a third of the early-stopping patience, so it can act before training stops.
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=_PLATEAU_FACTOR,
        patience=max(1, config.patience // 3),
        threshold=config.min_delta,
        threshold_mode="abs",
    )


def _pos_weight(labels: Tensor, config: TrainingConfig) -> Tensor | None:
    if not config.class_balance:
        return None
    n_pos = labels.sum()
    return ((len(labels) - n_pos) / n_pos).reshape(1)


def _to_device(
    features: Mapping[str, np.ndarray], branches: list[str], device: torch.device
) -> dict[str, Tensor]:
    return {
        b: torch.tensor(np.asarray(features[b]), dtype=torch.float32, device=device)
        for b in branches
    }


def _make_optimizer(
    model: nn.Module, config: TrainingConfig, extractors: Mapping[str, nn.Module] | None = None
) -> torch.optim.AdamW:
    # As in nanoGPT: decay weight matrices, not biases; fusion weights get their own group;
    # each trainable branch its own learning-rate scale.
    fusion = {id(p) for p in model.fusion_parameters()}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in fusion]
    groups = [
        {
            "params": [p for p in params if p.dim() >= 2],
            "weight_decay": config.weight_decay,
            "lr_scale": 1.0,
        },
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr_scale": 1.0},
    ]
    if fusion:
        groups.append(
            {"params": model.fusion_parameters(), "weight_decay": 0.0, "lr_scale": _FUSION_LR_SCALE}
        )
    groups += param_groups(extractors or {}, config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def _set_learning_rate(
    optimizer: torch.optim.Optimizer, epoch: int, config: TrainingConfig
) -> float:
    """Set this epoch's learning rate (warmup, then the schedule) and return it."""
    base, warmup = config.learning_rate, config.warmup_epochs
    if epoch <= warmup:
        lr = base * epoch / (warmup + 1)
    elif config.lr_schedule == "cosine":
        progress = (epoch - warmup - 1) / max(1, config.epochs - warmup - 1)
        lr = base * (
            _MIN_LR_RATIO + (1 - _MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        )
    elif config.lr_schedule == "plateau" and epoch > warmup + 1:
        return float(optimizer.param_groups[0]["lr"])  # owned by ReduceLROnPlateau from here
    else:
        lr = base
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
    return lr


def _stack_rows(y: np.ndarray, fraction: float, seed: int) -> Tensor:
    """Seeded, label-stratified mask of the training rows held out for the fusion weights."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        if len(rows) < 2:
            raise ValueError(
                f"late/stacking fusion needs at least 2 training rows of label {label} "
                f"(one for the branches, one for the fusion weights); got {len(rows)}"
            )
        n_held = min(len(rows) - 1, max(1, round(fraction * len(rows))))
        mask[rng.choice(rows, size=n_held, replace=False)] = True
    return torch.from_numpy(mask)


def _bce_rows(logits: Tensor, target: Tensor, pos_weight: Tensor | None) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction="none"
    )


@torch.inference_mode()
def _logits(model: FusionHead, features: dict[str, Tensor], n: int) -> Tensor:
    return torch.cat(
        [
            model({b: v[i : i + _EVAL_BATCH] for b, v in features.items()})
            for i in range(0, n, _EVAL_BATCH)
        ]
    )


def _cpu_copy(obj: Any) -> Any:
    """Deep copy of a (nested) state dict with every tensor cloned to CPU."""
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def _get_rng_state(shuffle: torch.Generator, device: torch.device) -> dict[str, Tensor | None]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "shuffle": shuffle.get_state(),
    }


def _set_rng_state(
    state: Mapping[str, Tensor | None], shuffle: torch.Generator, device: torch.device
) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _branch_states(extractors: Mapping[str, Any]) -> dict[str, dict[str, Tensor]]:
    return {name: extractor.trained_state() for name, extractor in extractors.items()}


def _result(
    checkpoint: Mapping[str, Any], extractors: Mapping[str, Any] | None = None
) -> TrainingResult:
    identities = {}
    best = checkpoint.get("best_branch_state", {})
    for name, extractor in (extractors or {}).items():
        extractor.to("cpu")
        extractor.load_trained(best[name], param_key=f"trainable branch {name!r}")
        identities[name] = extractor.identity()
    return TrainingResult(
        checkpoint=dict(checkpoint),
        history=[EpochMetrics(**h) for h in checkpoint["history"]],
        best_epoch=int(checkpoint["best_epoch"]),
        best_val_auc=float(checkpoint["best_metric"]),
        stopped_early=bool(checkpoint.get("stopped_early", False)),
        branch_identities=identities,
    )


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
