"""The fusion checkpoint: the one contract between training and everything that reads a model.

A checkpoint is a plain dict (``torch.save``-able, loaded with ``weights_only=True``) of this
shape, built here and read through :func:`upgrade`, which every loader applies so older
checkpoints keep loading:

- the training state (:class:`TrainingState`, written by the training loop every epoch and
  used to resume): weights (the fusion head's, and those of every trainable branch: a
  ``kind: srm_cnn`` pixel branch or a ``train_mode: finetune`` backbone), optimizer, config,
  epoch, early-stopping state, history;
- what the model was trained on (:func:`with_lineage`, added by ``ensemble_training``):
  backbone identities and configs per branch, dataset fingerprint, ``trained_at``;
- where it came from, filled when known: ``mlflow_run_id`` (the training run, stamped when
  the checkpoint is saved in a tracked run) and ``registry_version`` / ``registry_model_uri``
  (set when it was loaded from the registry).

Format history: 1 had ``created_at`` for ``trained_at`` and no origin keys; 2 had no
trainable branches (no ``branch_state`` / ``best_branch_state``); 3 is this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from deepfake_kedro.values import utc_now

FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
ORIGIN_KEYS = ("mlflow_run_id", "registry_version", "registry_model_uri")
BRANCH_STATE_KEYS = ("branch_state", "best_branch_state")


class TrainingState(TypedDict):
    """What the training loop saves every epoch (enough to resume or rebuild the model).

    ``model_state`` / ``best_state`` are the fusion head's weights (last / best epoch);
    ``branch_state`` / ``best_branch_state`` those of each trainable branch, keyed by branch
    (empty when every branch is frozen). ``scaler_state`` is the CUDA mixed-precision loss
    scaler's (None without one). ``inputs_digest``, when present, is the digest of what the
    training read (:mod:`deepfake_kedro.training.reuse`): a later run with the same digest
    takes this training's result instead of training again.
    """

    format_version: int
    model_state: dict[str, Any]
    branch_state: dict[str, dict[str, Any]]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any] | None
    scaler_state: dict[str, Any] | None
    config: dict[str, Any]
    branch_dims: dict[str, int]
    epoch: int
    best_state: dict[str, Any]
    best_branch_state: dict[str, dict[str, Any]]
    best_metric: float
    best_epoch: int
    epochs_without_improvement: int
    stopped_early: bool
    history: list[dict[str, float]]
    rng_state: dict[str, Any]
    device: str
    inputs_digest: NotRequired[str]


class Checkpoint(TrainingState):
    """A trained model: the training state plus its lineage and origin."""

    backbones: dict[str, dict[str, Any]]
    backbone_configs: dict[str, dict[str, Any]]
    dataset_fingerprint: str
    trained_at: str
    mlflow_run_id: str | None
    registry_version: str | None
    registry_model_uri: str | None


def with_lineage(
    state: Mapping[str, Any],
    *,
    backbones: Mapping[str, Mapping[str, Any]],
    backbone_configs: Mapping[str, Mapping[str, Any]],
    dataset_fingerprint: str,
    trained_at: str | None = None,
) -> Checkpoint:
    """The checkpoint of a finished training: ``state`` with what it was trained on.

    Args:
        state: The training loop's best/last state.
        backbones: Identity of each fused branch's backbone (keys of the feature caches).
        backbone_configs: Parameters that rebuild each branch's backbone.
        dataset_fingerprint: Fingerprint of the training data.
        trained_at: When it was trained (default: now); a version registered later keeps it.

    Raises:
        ValueError: if a fused branch has no identity or config.
    """
    branches = list(state["config"]["branches"])
    missing = [b for b in branches if b not in backbones or b not in backbone_configs]
    if missing:
        raise ValueError(f"no backbone identity/config for fused branch(es) {missing}")
    return upgrade(
        {
            **state,
            "backbones": {b: dict(backbones[b]) for b in branches},
            "backbone_configs": {b: dict(backbone_configs[b]) for b in branches},
            "dataset_fingerprint": dataset_fingerprint,
            "trained_at": trained_at or utc_now(),
        }
    )


def stamp_training_run(checkpoint: dict[str, Any], run_id: str | None) -> None:
    """Record (in place) the MLflow run that trained ``checkpoint`` (None: untracked)."""
    checkpoint["mlflow_run_id"] = run_id


def from_registry(checkpoint: Mapping[str, Any], version: str, model_uri: str) -> Checkpoint:
    """``checkpoint`` as loaded from registered ``version`` (``models:/<name>/<version>``)."""
    return upgrade(
        {**checkpoint, "registry_version": str(version), "registry_model_uri": model_uri}
    )


def upgrade(raw: Mapping[str, Any]) -> Any:
    """Any readable checkpoint (or training state) in the current format.

    Renames ``created_at`` to ``trained_at`` (format 1), gives the origin keys a value
    (None when unknown) and the trainable-branch states one (empty: formats 1 and 2 had
    frozen branches only), so readers index instead of guessing with ``.get``.

    Raises:
        ValueError: if the checkpoint is of a format this code cannot read.
    """
    version = raw.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"checkpoint format_version is {version!r}; this code reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}: retrain, or load the model with the "
            "code it was registered with (a fresh Python process)"
        )
    checkpoint = dict(raw)
    if "created_at" in checkpoint:
        checkpoint.setdefault("trained_at", checkpoint.pop("created_at"))
    for key in ORIGIN_KEYS:
        checkpoint.setdefault(key, None)
    for key in BRANCH_STATE_KEYS:
        checkpoint.setdefault(key, {})
    checkpoint.setdefault("scaler_state", None)
    checkpoint["format_version"] = FORMAT_VERSION
    return checkpoint


def trained_branches(checkpoint: Mapping[str, Any]) -> list[str]:
    """The fused branches whose weights the checkpoint carries (trained in ensemble_training)."""
    return [b for b in checkpoint["config"]["branches"] if b in checkpoint["best_branch_state"]]


def lineage(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What a report or a registry version records about the checkpoint's origin."""
    return {
        "checkpoint_dataset_fingerprint": checkpoint.get("dataset_fingerprint"),
        "training_run_id": checkpoint["mlflow_run_id"],
        "registered_model": checkpoint["registry_model_uri"],
        "backbones": checkpoint.get("backbones", {}),
        "best_val_auc": checkpoint["best_metric"],
        "trained_at": checkpoint.get("trained_at"),
    }
