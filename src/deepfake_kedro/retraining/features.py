"""Champion-backbone features of manifest rows, through the feature cache.

Images already in a branch's cache (same backbone identity: architecture, weights,
preprocessing) are loaded, not re-extracted; the others are extracted once and written to the
cache, where the next training run finds them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deepfake_kedro.features import ExtractionConfig, FeatureCacheRoot, update_cache
from deepfake_kedro.inference import Detector
from deepfake_kedro.io import ImageStore

logger = logging.getLogger(__name__)


def champion_features(
    rows: pd.DataFrame,
    checkpoint: Mapping[str, Any],
    store: ImageStore,
    caches: Mapping[str, FeatureCacheRoot],
    runtime: ExtractionConfig,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per-branch features of ``rows`` (in row order) from the champion's backbones.

    Args:
        rows: Rows with ``image_path`` and ``content_hash``.
        checkpoint: The champion's fusion checkpoint (backbone configs and identities).
        store: Where the images are read from.
        caches: Feature-cache root of each branch (``resnet``, ``clip``, ``spectral``).
        runtime: Extraction settings.

    Returns:
        The features and, per branch, how many images had to be extracted (not cached).

    Raises:
        ValueError: if a branch of the checkpoint has no cache root.
    """
    detector = Detector(checkpoint)
    missing = [b for b in detector.branches if b not in caches]
    if missing:
        raise ValueError(
            f"the champion uses branch(es) {missing} but no feature cache was given for them; "
            f"known: {sorted(caches)}. Add '<branch>.feature_cache' to the catalog"
        )
    # Every row is needed here, so no fan-out slice of the hashes.
    runtime = runtime.model_copy(update={"shard_index": 0, "num_shards": 1})
    features: dict[str, np.ndarray] = {}
    extracted: dict[str, int] = {}
    for branch in detector.branches:
        extractor = detector.extractors[branch]
        if rows.empty:
            features[branch] = np.zeros((0, extractor.feature_dim), np.float32)
            extracted[branch] = 0
            continue
        cache = caches[branch].open(extractor.identity())
        report = update_cache(rows, store, extractor, cache, runtime)
        extracted[branch] = int(report["n_extracted"])
        features[branch] = cache.load(rows["content_hash"].astype(str).tolist())
    logger.info("champion features of %d rows; extracted (not cached): %s", len(rows), extracted)
    return features, extracted
