"""Nodes of ensemble_training: adapters over :mod:`deepfake_kedro.training`."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deepfake_kedro.datasets.torch_checkpoint import CheckpointStore
from deepfake_kedro.training import TrainingConfig, plot_training_curves, train_fusion
from deepfake_kedro.training.checkpoint import Checkpoint, with_lineage
from deepfake_kedro.training.inputs import (
    augmented_arrays,
    branch_config,
    branch_identity,
    split_arrays,
    synthetic_arrays,
)

logger = logging.getLogger(__name__)


def train_ensemble(
    split_manifest: pd.DataFrame,
    dataset_fingerprint: dict[str, Any],
    training_state: CheckpointStore,
    params: TrainingConfig,
    **branch_features: dict[str, np.ndarray],
) -> tuple[Checkpoint, dict[str, Any], Figure, dict[str, str]]:
    """Train the fusion head on the train split (with its augmented views and the synthetic
    fakes of its reals, when the branches have them), early-stopping on validation AUC.

    Args:
        split_manifest: Manifest with ``split``, ``label`` and ``content_hash``.
        dataset_fingerprint: Lineage of the data, stored in the checkpoint and as run tags.
        training_state: Where the state is saved every epoch (and resumed from when
            ``params.resume``).
        params: ``ensemble_training`` parameters; ``branches`` null fuses every branch.
        **branch_features: Each branch's model-input features, keyed by branch.

    Returns:
        The checkpoint (best weights, optimizer, config, backbone identities and configs,
        lineage), the metric
        history for MLflow, the training-curve figure and the run tags.
    """
    tables = branch_features
    if params.branches is None:
        params = params.model_copy(update={"branches": list(tables)})
    train_x, y_train = split_arrays(split_manifest, tables, params.branches, "train")
    aug_x, y_aug = augmented_arrays(split_manifest, tables, params.branches)
    syn_x, y_syn = synthetic_arrays(split_manifest, tables, params.branches)
    if len(y_aug) or len(y_syn):
        logger.info(
            "Training on %d images + %d augmented views + %d synthetic fakes",
            len(y_train), len(y_aug), len(y_syn),
        )  # fmt: skip
        train_x = {b: np.concatenate([train_x[b], aug_x[b], syn_x[b]]) for b in params.branches}
        y_train = np.concatenate([y_train, y_aug, y_syn])
    val_x, y_val = split_arrays(split_manifest, tables, params.branches, "val")
    resume_from = training_state.load() if params.resume else None
    if params.resume and resume_from is None:
        logger.warning("ensemble_training.resume is set but no saved state exists: starting anew")

    result = train_fusion(
        train_x,
        y_train,
        val_x,
        y_val,
        params,
        resume_from=resume_from,
        on_epoch_end=training_state.save,
    )
    backbones = {name: branch_identity(tables[name]) for name in params.branches}
    checkpoint = with_lineage(
        result.checkpoint,
        backbones=backbones,
        backbone_configs={name: branch_config(tables[name]) for name in params.branches},
        dataset_fingerprint=dataset_fingerprint["fingerprint"],
    )
    return (
        checkpoint,
        _metric_history(result),
        plot_training_curves(result.history),
        _run_tags(backbones, dataset_fingerprint, result),
    )


def _metric_history(result: Any) -> dict[str, Any]:
    """Per-epoch curves as kedro-mlflow metric histories, plus the best values."""
    metrics: dict[str, Any] = {}
    for epoch in result.history:
        row = epoch.to_dict()
        step = int(row.pop("epoch"))
        for key, value in row.items():
            metrics.setdefault(key, []).append({"value": float(value), "step": step})
    metrics["best_val_auc"] = {"value": float(result.best_val_auc), "step": int(result.best_epoch)}
    metrics["best_epoch"] = {"value": float(result.best_epoch), "step": 0}
    return metrics


def _run_tags(
    backbones: dict[str, dict], fingerprint: dict[str, Any], result: Any
) -> dict[str, str]:
    def describe(key: str) -> str:
        return ",".join(f"{name}={identity.get(key)}" for name, identity in backbones.items())

    return {
        "dataset_fingerprint": fingerprint["fingerprint"],
        "backbones": describe("arch"),
        "weights": describe("weights"),
        "best_val_auc": f"{result.best_val_auc:.4f}",
    }
