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
from deepfake_kedro.models import BackboneConfig, build_extractor
from deepfake_kedro.models.backbones import is_trainable
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
from deepfake_kedro.training.synthetic import SyntheticFakes, SyntheticFakesConfig, face_boxes
from deepfake_kedro.training.trainable import TrainableInputs

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
    configs = _trainable_configs(backbones or {})
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
        trainable = _trainable_inputs(
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
            "pixels": _pixel_settings(split_manifest, augmentation, synthetic_fakes)
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


def _trainable_configs(backbones: dict[str, Any]) -> dict[str, BackboneConfig]:
    """The enabled ``train_mode: finetune`` entries of ``feature_extraction.backbones``, typed."""
    configs = {}
    for name, entry in backbones.items():
        config = entry if isinstance(entry, BackboneConfig) else dict(entry)
        enabled = config.enabled if isinstance(config, BackboneConfig) else config.get("enabled", True)
        if not enabled or not is_trainable(config):
            continue
        if not isinstance(config, BackboneConfig):
            try:
                config = BackboneConfig.model_validate(config)
            except ValueError as err:
                raise ValueError(f"feature_extraction.backbones.{name}: {err}") from err
        configs[name] = config
    return configs


def _pixel_settings(
    manifest: pd.DataFrame,
    augmentation: AugmentationConfig | None,
    synthetic_fakes: SyntheticFakesConfig | None,
) -> dict[str, Any]:
    """What trainable branches read besides the features: which images, labels and splits,
    and how they are augmented and blended (for the training-reuse digest)."""
    columns = [c for c in ("content_hash", "split", "label", "face_box") if c in manifest.columns]
    return {
        "rows": manifest[columns].astype(str).to_numpy().tolist(),
        "augmentation": augmentation.model_dump(mode="json") if augmentation else None,
        "synthetic_fakes": synthetic_fakes.model_dump(mode="json") if synthetic_fakes else None,
    }

def _trainable_inputs(
    configs: dict[str, BackboneConfig],
    manifest: pd.DataFrame,
    train_rows: pd.DataFrame,
    raw_images: ImageStore | None,
    augmentation: AugmentationConfig | None,
    synthetic_fakes: SyntheticFakesConfig | None,
    branches: list[str],
) -> TrainableInputs:
    """The trainable branches' networks and the images they learn from."""
    if raw_images is None:
        raise ValueError(
            f"trainable branch(es) {sorted(configs)} need the images: the ensemble_training "
            "node must read raw_images (its pipeline adds it when a branch is trainable)"
        )
    if augmentation is not None and not isinstance(augmentation, AugmentationConfig):
        augmentation = AugmentationConfig.model_validate(augmentation)
    store: Any = raw_images
    if train_rows["view"].notna().any():  # synthetic fakes of the train split's reals
        if synthetic_fakes is None:
            raise ValueError(
                "the frozen branches' tables hold synthetic fakes but the ensemble_training node "
                "got no feature_extraction.synthetic_fakes to make them for the trainable branches"
            )
        if not isinstance(synthetic_fakes, SyntheticFakesConfig):
            synthetic_fakes = SyntheticFakesConfig.model_validate(synthetic_fakes)
        store = SyntheticFakes(raw_images, synthetic_fakes, face_boxes(manifest))
    extractors = {
        name: build_extractor(config, param_key=f"feature_extraction.backbones.{name}")
        for name, config in configs.items()
        if name in branches
    }
    return TrainableInputs(
        extractors=extractors,
        store=store,
        train_rows=train_rows.reset_index(drop=True),
        val_rows=manifest[manifest["split"] == "val"].reset_index(drop=True),
        augmentation=augmentation,
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
