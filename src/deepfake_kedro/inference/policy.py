"""The scoring policy: a checkpoint's features for manifest rows, from the cache when it has them.

One policy for validation, registration (the champion re-scored on this run's data) and
retraining (the champion on new data): for each branch of the checkpoint, the branch's feature
cache is opened at the checkpoint's backbone identity (architecture, weights, preprocessing);
images it holds are loaded, the others are extracted once with the checkpoint's own backbone
and written there, where the next run finds them. A branch with no cache root (a registered
version with a branch this project no longer configures) is extracted without caching.
Backbones are built only for branches that have something to extract. A branch trained
inside ``ensemble_training`` is no exception: its identity names the digest of its trained
weights, so its cache folder holds that model's features alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deepfake_kedro.cache_use import cache_use
from deepfake_kedro.features import ExtractionConfig, FeatureCacheRoot, iter_features, update_cache
from deepfake_kedro.inference.detector import build_branch_extractor
from deepfake_kedro.training import build_model, predict_proba
from deepfake_kedro.training.inputs import LABEL_VALUES

logger = logging.getLogger(__name__)

EVALUATED_SPLITS = ("val", "test")


def checkpoint_features(
    rows: pd.DataFrame,
    checkpoint: Mapping[str, Any],
    store: Any,
    caches: Mapping[str, FeatureCacheRoot],
    runtime: ExtractionConfig,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per-branch features of ``rows`` (in row order) from the checkpoint's backbones.

    Args:
        rows: Rows with ``image_path`` and ``content_hash``.
        checkpoint: A fusion checkpoint (backbone configs and identities).
        store: Where the images are read from.
        caches: Feature-cache root of each branch that has one.
        runtime: Extraction settings (sharding is ignored: every row is needed).

    Returns:
        The features and, per branch, how many images had to be extracted.
    """
    runtime = runtime.model_copy(update={"shard_index": 0, "num_shards": 1})
    hashes = rows["content_hash"].astype(str).tolist() if len(rows) else []
    features: dict[str, np.ndarray] = {}
    extracted: dict[str, int] = {}
    for branch in checkpoint["config"]["branches"]:
        root = caches.get(branch)
        if root is None:
            logger.info(
                "Branch %s has no feature cache here: extracting %d images",
                branch,
                len(rows),
                extra=cache_use(0, len(rows), "images"),
            )
            extractor = build_branch_extractor(checkpoint, branch)
            chunks = [f for _, f in iter_features(rows, store, extractor, runtime)] if hashes else []
            features[branch] = (
                np.concatenate(chunks) if chunks else np.zeros((0, extractor.feature_dim), np.float32)
            )
            extracted[branch] = len(rows)
            continue
        cache = root.open(checkpoint["backbones"][branch])
        n_missing = len(set(hashes) - cache.cached_hashes())
        if n_missing:  # update_cache says how many the cache served
            extractor = build_branch_extractor(checkpoint, branch)
            update_cache(rows, store, extractor, cache, runtime)
        elif hashes:
            logger.info(
                "Branch %s: all %d images served from its feature cache",
                branch,
                len(set(hashes)),
                extra=cache_use(len(set(hashes)), 0, "images"),
            )
        extracted[branch] = n_missing
        features[branch] = (
            cache.load(hashes)
            if hashes
            else np.zeros((0, int(checkpoint["backbones"][branch]["feature_dim"])), np.float32)
        )
    return features, extracted


def score_rows(
    rows: pd.DataFrame,
    checkpoint: Mapping[str, Any],
    store: Any,
    caches: Mapping[str, FeatureCacheRoot],
    runtime: ExtractionConfig,
) -> tuple[np.ndarray, dict[str, int]]:
    """Fake probabilities of ``rows`` under the checkpoint, and the extractions it took."""
    if rows.empty:
        return np.zeros(0, dtype=np.float64), {}
    features, extracted = checkpoint_features(rows, checkpoint, store, caches, runtime)
    return predict_proba(build_model(checkpoint), features), extracted


def score_evaluated_rows(
    checkpoint: Mapping[str, Any],
    split_manifest: pd.DataFrame,
    store: Any,
    caches: Mapping[str, FeatureCacheRoot],
    runtime: ExtractionConfig,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The val/test rows with ``y`` (1 = fake) and the checkpoint's ``score``.

    Raises:
        ValueError: if the val or the test split is empty.
    """
    rows = split_manifest[split_manifest["split"].isin(EVALUATED_SPLITS)].reset_index(drop=True)
    for split in EVALUATED_SPLITS:
        if not (rows["split"] == split).any():
            raise ValueError(f"the {split!r} split is empty: check data_ingestion.split fractions")
    scores, extracted = score_rows(rows, checkpoint, store, caches, runtime)
    if any(extracted.values()):
        logger.info("Scored %d val/test rows; extracted (not cached): %s", len(rows), extracted)
    return rows.assign(y=rows["label"].map(LABEL_VALUES).astype(int), score=scores), extracted
