"""Nodes of the retraining pipeline: thin adapters over :mod:`deepfake_kedro.retraining`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from deepfake_kedro.features import ExtractionConfig, FeatureCacheRoot
from deepfake_kedro.inference.policy import checkpoint_features
from deepfake_kedro.ingestion import (
    IngestionConfig,
    dataset_fingerprint,
    split_by_source,
    validate_manifest,
)
from deepfake_kedro.io import ImageStore
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.retraining.champion import ChampionInfo, load_champion
from deepfake_kedro.retraining.checks import (
    check_champion,
    check_degradation,
    check_drift,
    check_freshness,
    decide,
    decision_metrics,
    select_new_rows,
)
from deepfake_kedro.retraining.config import RetrainingConfig
from deepfake_kedro.training import build_model, predict_proba

logger = logging.getLogger(__name__)


def prepare_current_data(
    raw_manifest: pd.DataFrame, raw_images: ImageStore, params: IngestionConfig
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate and split the current manifest exactly as data_ingestion would, and fingerprint it.

    The same data and ``data_ingestion`` parameters give the fingerprint a training run records,
    so an unchanged data set is recognised as such.

    Returns:
        The split manifest (``content_hash``, ``captured_at``, ``split``...) and its fingerprint.
    """
    validated, _ = validate_manifest(raw_manifest, raw_images, params)
    split = split_by_source(validated, params.split)
    return split, dataset_fingerprint(split)


def load_champion_info(registry: MlflowClient, registry_params: RegistryConfig) -> dict[str, Any]:
    """Read the champion version and its training facts from the registry.

    Returns:
        ``{"champion": ChampionInfo | None}`` (a dict, so that "no champion" can be saved).
    """
    return {"champion": load_champion(registry, registry_params.model_name)}


def check_for_champion(champion: dict[str, Any]) -> dict[str, Any]:
    """Check: trigger when there is no champion or it lacks recorded training data."""
    return check_champion(champion["champion"]).to_dict()


def select_new_data(current_manifest: pd.DataFrame, champion: dict[str, Any]) -> pd.DataFrame:
    """Rows of the current data the champion was not trained on."""
    return select_new_rows(current_manifest, champion["champion"])


def check_data_freshness(
    current_manifest: pd.DataFrame,
    new_data: pd.DataFrame,
    current_fingerprint: dict[str, Any],
    champion: dict[str, Any],
    params: RetrainingConfig,
) -> dict[str, Any]:
    """Check: new labelled data and an old champion, or stale training data."""
    return check_freshness(
        current_manifest,
        new_data,
        current_fingerprint,
        champion["champion"],
        params.freshness,
        datetime.now(UTC),
    ).to_dict()


def embed_for_checks(
    current_manifest: pd.DataFrame,
    new_data: pd.DataFrame,
    champion: dict[str, Any],
    raw_images: ImageStore,
    runtime: ExtractionConfig,
    **feature_caches: FeatureCacheRoot,
) -> dict[str, Any]:
    """Champion-backbone features of the new images and of the training images still present.

    The scoring policy (:mod:`deepfake_kedro.inference.policy`): only images not cached for
    the champion's backbones are extracted. Nothing is computed when there are no new images
    or no champion checkpoint. ``feature_caches``: each branch's cache root, keyed by branch.

    Returns:
        ``new`` and ``reference`` (per-branch arrays) and ``n_extracted`` per branch.
    """
    info: ChampionInfo | None = champion["champion"]
    empty: dict[str, Any] = {"new": {}, "reference": {}, "n_extracted": {}}
    if info is None or info.checkpoint is None or new_data.empty:
        return empty
    caches = feature_caches
    new, extracted = checkpoint_features(new_data, info.checkpoint, raw_images, caches, runtime)
    reference: dict[str, np.ndarray] = {}
    if info.training_manifest is not None:
        seen = set(info.training_manifest["content_hash"].astype(str))
        rows = current_manifest[current_manifest["content_hash"].astype(str).isin(seen)]
        reference, more = checkpoint_features(
            rows.reset_index(drop=True), info.checkpoint, raw_images, caches, runtime
        )
        extracted = {b: extracted[b] + more.get(b, 0) for b in extracted}
    return {"new": new, "reference": reference, "n_extracted": extracted}


def check_performance_degradation(
    new_data: pd.DataFrame,
    features: dict[str, Any],
    champion: dict[str, Any],
    params: RetrainingConfig,
) -> dict[str, Any]:
    """Check: the champion's AUC on new labelled data against its recorded test AUC."""
    info: ChampionInfo | None = champion["champion"]
    scores = None
    if info is not None and info.checkpoint is not None and features["new"] and len(new_data):
        head = build_model(info.checkpoint)
        branches = info.checkpoint["config"]["branches"]
        scores = predict_proba(head, {b: features["new"][b] for b in branches})
    return check_degradation(new_data, scores, info, params.degradation).to_dict()


def check_feature_drift(features: dict[str, Any], params: RetrainingConfig) -> dict[str, Any]:
    """Check: embedding distribution of new images against the champion's training images."""
    return check_drift(features["reference"], features["new"], params.drift).to_dict()


def decide_retraining(  # one input per check keeps the graph explicit
    champion_check: dict[str, Any],
    freshness_check: dict[str, Any],
    degradation_check: dict[str, Any],
    drift_check: dict[str, Any],
    champion: dict[str, Any],
    current_fingerprint: dict[str, Any],
    params: RetrainingConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Combine the checks into ``retrain: yes/no`` with reasons.

    Returns:
        The decision (JSON, also an MLflow artifact) and its key numbers as MLflow metrics.
    """
    info: ChampionInfo | None = champion["champion"]
    decision = decide(
        [champion_check, freshness_check, degradation_check, drift_check],
        force=params.force,
        context={
            "champion": None if info is None else info.summary(),
            "current_data": {
                k: current_fingerprint.get(k)
                for k in ("fingerprint", "n_images", "newest_captured_at")
            },
        },
    )
    metrics = {k: {"value": v, "step": 0} for k, v in decision_metrics(decision).items()}
    return decision, metrics
