"""Nodes of feature_extraction: adapters over :mod:`deepfake_kedro.models` and
:mod:`deepfake_kedro.features`."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from deepfake_kedro.features import ExtractionConfig, FeatureCacheRoot, update_cache
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig, build_extractor

logger = logging.getLogger(__name__)


def extract_features(
    split_manifest: pd.DataFrame,
    raw_images: ImageStore,
    feature_cache: FeatureCacheRoot,
    backbone: BackboneConfig,
    runtime: ExtractionConfig,
    *,
    branch: str,
) -> dict[str, Any]:
    """Bring the branch's feature cache up to date with the manifest (new/changed images only).

    Args:
        split_manifest: Manifest with ``image_path`` and ``content_hash``.
        raw_images: Store the image paths are relative to.
        feature_cache: Root of this branch's cache.
        backbone: This branch's backbone (architecture, weights, preprocessing).
        runtime: Batch size, workers, device, precision, sharding.
        branch: The branch's name (its key under ``feature_extraction.backbones``).

    Returns:
        The extraction report (counts, throughput, device, precision, cache identity) with
        the backbone config, so the trained model can rebuild its backbones.
    """
    extractor = build_extractor(backbone, param_key=f"feature_extraction.backbones.{branch}")
    cache = feature_cache.open(extractor.identity())
    report = update_cache(split_manifest, raw_images, extractor, cache, runtime)
    return {**report, "branch": branch, "backbone": backbone.model_dump(mode="json")}


def collect_features(
    split_manifest: pd.DataFrame, feature_cache: FeatureCacheRoot, extraction_report: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Gather the manifest's features from the cache (after all extraction shards ran).

    Args:
        split_manifest: Manifest with ``content_hash``.
        feature_cache: Root of this branch's cache.
        extraction_report: Report of the extraction, holding the cache identity.

    Returns:
        ``content_hash`` (unique hashes of the manifest), ``features`` (float32, one row per
        hash), ``identity`` and ``backbone`` (JSON of the backbone identity and config).
    """
    identity = extraction_report["identity"]
    hashes = pd.unique(split_manifest["content_hash"].astype(str))
    features = feature_cache.open(identity).load(list(hashes))
    return {
        "content_hash": np.asarray(hashes, dtype=str),
        "features": features.astype(np.float32, copy=False),
        "identity": np.array(json.dumps(identity, sort_keys=True)),
        "backbone": np.array(json.dumps(extraction_report["backbone"], sort_keys=True)),
    }
