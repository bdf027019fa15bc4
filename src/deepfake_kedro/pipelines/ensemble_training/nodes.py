"""Nodes of ensemble_training: adapters over :mod:`deepfake_kedro.training`."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deepfake_kedro.cache_use import cache_use
from deepfake_kedro.datasets.torch_checkpoint import CheckpointStore
from deepfake_kedro.io import ImageStore
from deepfake_kedro.training import TrainingConfig, plot_training_curves, train_fusion
from deepfake_kedro.training.augmentation import AugmentationConfig
from deepfake_kedro.training.checkpoint import Checkpoint, with_lineage
from deepfake_kedro.training.inputs import (
    augmented_arrays,
    branch_config,
    branch_identity,
    split_arrays,
    synthetic_arrays,
    training_images,
)
from deepfake_kedro.training.reuse import INPUTS_DIGEST, inputs_digest, reusable
from deepfake_kedro.training.synthetic import SyntheticFakesConfig
from deepfake_kedro.training.trainable import pixel_settings, trainable_configs, trainable_inputs

logger = logging.getLogger(__name__)


def train_ensemble(
    split_manifest: pd.DataFrame,
    dataset_fingerprint: dict[str, Any],
    training_state: CheckpointStore,
    params: TrainingConfig,
    raw_images: ImageStore | None = None,
    augmentation: AugmentationConfig | None = None,
    backbones: dict[str, Any] | None = None,
    synthetic_fakes: SyntheticFakesConfig | None = None,
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
        raw_images: Store of the images (read when a branch is trainable).
        augmentation: ``feature_extraction.augmentation``: the trainable branches draw a
            fresh augmentation of every training image at each epoch from its ranges.
        backbones: ``feature_extraction.backbones`` (given when a branch is trainable): the
            trainable ones (``train_mode: finetune``) are built from it and trained here.
        synthetic_fakes: ``feature_extraction.synthetic_fakes``: a trainable branch reads the
            same synthetic fakes as the frozen branches' rows (then augments them).
        **branch_features: Each frozen branch's model-input features, keyed by branch.

    Returns:
        The checkpoint (best weights, optimizer, config, backbone identities and configs,
        lineage), the metric
        history for MLflow, the training-curve figure and the run tags.
    """
    tables = branch_features
    configs = trainable_configs(backbones or {})
    if params.branches is None:
        order = list(backbones or {}) + list(tables)
        branches = [b for b in dict.fromkeys(order) if b in tables or b in configs]
        params = params.model_copy(update={"branches": branches})
    frozen = [b for b in params.branches if b not in configs]
    train_x, y_train = split_arrays(split_manifest, tables, frozen, "train")
    if frozen:  # augmented views and synthetic fakes are rows of the frozen branches' tables
        aug_x, y_aug = augmented_arrays(split_manifest, tables, frozen)
        syn_x, y_syn = synthetic_arrays(split_manifest, tables, frozen)
        if len(y_aug) or len(y_syn):
            logger.info(
                "Training on %d images + %d augmented views + %d synthetic fakes",
                len(y_train), len(y_aug), len(y_syn),
            )  # fmt: skip
            train_x = {b: np.concatenate([train_x[b], aug_x[b], syn_x[b]]) for b in frozen}
            y_train = np.concatenate([y_train, y_aug, y_syn])
    val_x, y_val = split_arrays(split_manifest, tables, frozen, "val")
    trainable = None
    if configs:
        trainable = trainable_inputs(
            configs, split_manifest, training_images(split_manifest, tables, frozen),
            raw_images, augmentation, synthetic_fakes, params.branches,
        )  # fmt: skip
    digest = inputs_digest(
        {
            **{f"train.{b}": x for b, x in train_x.items()},
            **{f"val.{b}": x for b, x in val_x.items()},
            "y_train": y_train,
            "y_val": y_val,
        },
        params.model_dump(mode="json"),
        {
            "frozen": {b: branch_identity(tables[b]) for b in frozen},
            "trainable": {b: c.model_dump(mode="json") for b, c in configs.items()},
            "pixels": pixel_settings(split_manifest, augmentation, synthetic_fakes)
            if configs
            else None,
        },
    )
    saved = training_state.load() if params.resume or params.reuse else None
    resume_from = saved if params.resume else None
    if params.reuse and reusable(saved, digest):
        logger.info(
            "ensemble_training: the inputs are unchanged since the training saved in "
            "training_state (digest %s): reusing its result, nothing is retrained "
            "(ensemble_training.reuse=false trains anyway)",
            digest[:12],
            extra=cache_use(1, 0, "models"),
        )
        resume_from = saved
    else:
        if params.resume and saved is None:
            logger.warning(
                "ensemble_training.resume is set but no saved state exists: starting anew"
            )
        logger.info(
            "ensemble_training: no finished training of these inputs is saved: training",
            extra=cache_use(0, 1, "models"),
        )

    result = train_fusion(
        train_x,
        y_train,
        val_x,
        y_val,
        params,
        trainable=trainable,
        resume_from=resume_from,
        on_epoch_end=lambda state: training_state.save({**state, INPUTS_DIGEST: digest}),
    )
    identities = {
        name: result.branch_identities[name] if name in configs else branch_identity(tables[name])
        for name in params.branches
    }
    checkpoint = with_lineage(
        result.checkpoint,
        backbones=identities,
        backbone_configs={
            name: configs[name].model_dump(mode="json")
            if name in configs
            else branch_config(tables[name])
            for name in params.branches
        },
        dataset_fingerprint=dataset_fingerprint["fingerprint"],
    )
    return (
        checkpoint,
        _metric_history(result),
        plot_training_curves(result.history),
        _run_tags(identities, dataset_fingerprint, result),
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
