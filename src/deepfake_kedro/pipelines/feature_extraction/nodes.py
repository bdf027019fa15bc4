"""Nodes of feature_extraction: adapters over :mod:`deepfake_kedro.models` and
:mod:`deepfake_kedro.features`."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from deepfake_kedro.features import (
    ExtractionConfig,
    FeatureCacheRoot,
    gather_reports,
    shard_key,
    update_cache,
)
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig, build_extractor
from deepfake_kedro.training.augmentation import (
    AugmentationConfig,
    AugmentedViews,
    augmented_rows,
)
from deepfake_kedro.training.synthetic import (
    SyntheticFakes,
    SyntheticFakesConfig,
    face_boxes,
    synthetic_rows,
)

logger = logging.getLogger(__name__)


def extract_features(
    split_manifest: pd.DataFrame,
    raw_images: ImageStore,
    feature_cache: FeatureCacheRoot,
    backbone: BackboneConfig,
    runtime: ExtractionConfig,
    augmentation: AugmentationConfig,
    synthetic_fakes: SyntheticFakesConfig,
    *,
    branch: str,
) -> dict[str, Any]:
    """Bring the branch's feature cache up to date with the manifest (new/changed images
    only), with the augmented views of the training images and with the synthetic fakes of
    the training reals.

    Args:
        split_manifest: Manifest with ``image_path``, ``content_hash`` and ``split``.
        raw_images: Store the image paths are relative to.
        feature_cache: Root of this branch's cache.
        backbone: This branch's backbone (architecture, weights, preprocessing).
        runtime: Batch size, workers, device, precision, sharding.
        augmentation: Augmented training views (``views: 0`` for none).
        synthetic_fakes: Synthetic self-blended fakes of the real training images (off
            unless ``enabled``).
        branch: The branch's name (its key under ``feature_extraction.backbones``).

    Returns:
        The extraction report (counts, throughput, device, precision, cache identity) with
        the backbone config, so the trained model can rebuild its backbones, and the
        augmentation and the synthetic fakes with their counts.
    """
    extractor = build_extractor(backbone, param_key=f"feature_extraction.backbones.{branch}")
    cache = feature_cache.open(extractor.identity())
    report = update_cache(split_manifest, raw_images, extractor, cache, runtime)
    train = split_manifest[split_manifest["split"] == "train"]
    views = augmented_rows(train, augmentation)
    augmented: dict[str, Any] = {**augmentation.model_dump(mode="json"), "n_extracted": 0}
    if len(views):
        store = AugmentedViews(raw_images, augmentation)
        augmented["n_extracted"] = update_cache(views, store, extractor, cache, runtime)[
            "n_extracted"
        ]
    fakes = synthetic_rows(split_manifest, synthetic_fakes)
    synthetic: dict[str, Any] = {**synthetic_fakes.model_dump(mode="json"), "n_extracted": 0}
    if len(fakes):
        store = SyntheticFakes(raw_images, synthetic_fakes, face_boxes(fakes))
        synthetic["n_extracted"] = update_cache(fakes, store, extractor, cache, runtime)[
            "n_extracted"
        ]
    return {
        **report,
        "branch": branch,
        "backbone": backbone.model_dump(mode="json"),
        "augmentation": augmented,
        "synthetic_fakes": synthetic,
    }


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
        hash), ``identity`` and ``backbone`` (JSON of the backbone identity and config), and
        the augmented training views: ``augmented_hash`` (the image's hash),
        ``augmented_view`` and ``augmented_features``; the synthetic fakes of the training
        reals: ``synthetic_hash`` (the source image's hash), ``synthetic_index`` and
        ``synthetic_features``.
    """
    identity = extraction_report["identity"]
    cache = feature_cache.open(identity)
    hashes = pd.unique(split_manifest["content_hash"].astype(str))
    features = cache.load(list(hashes))
    config = AugmentationConfig.model_validate(
        {k: v for k, v in extraction_report.get("augmentation", {"views": 0}).items()
         if k != "n_extracted"}
    )  # fmt: skip
    train = split_manifest[split_manifest["split"] == "train"].drop_duplicates("content_hash")
    views = augmented_rows(train, config)
    synthetic = SyntheticFakesConfig.model_validate(
        {k: v for k, v in extraction_report.get("synthetic_fakes", {}).items()
         if k != "n_extracted"}
    )  # fmt: skip
    fakes = synthetic_rows(split_manifest, synthetic)
    dim = features.shape[1]
    return {
        "content_hash": np.asarray(hashes, dtype=str),
        "features": features.astype(np.float32, copy=False),
        "identity": np.array(json.dumps(identity, sort_keys=True)),
        "backbone": np.array(json.dumps(extraction_report["backbone"], sort_keys=True)),
        "augmented_hash": views["image_hash"].to_numpy(dtype=str),
        "augmented_view": views["view_index"].to_numpy(dtype=np.int64),
        "augmented_features": cache.load(views["content_hash"].tolist()).astype(np.float32)
        if len(views)
        else np.zeros((0, dim), np.float32),
        "synthetic_hash": fakes["image_hash"].to_numpy(dtype=str),
        "synthetic_index": fakes["view_index"].to_numpy(dtype=np.int64),
        "synthetic_features": cache.load(fakes["content_hash"].tolist()).astype(np.float32)
        if len(fakes)
        else np.zeros((0, dim), np.float32),
    }


def gather_features(
    split_manifest: pd.DataFrame,
    feature_cache: FeatureCacheRoot,
    extraction_shards: dict[str, dict[str, Any]],
    runtime: ExtractionConfig,
    *,
    branch: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Once every extraction shard ran: the branch's one report, then the manifest's features.

    Args:
        split_manifest: Manifest with ``content_hash``.
        feature_cache: Root of this branch's cache.
        extraction_shards: The shards' reports by shard name (``shard-<i>-of-<n>``), or one
            shard's report.
        runtime: The extraction settings; ``num_shards`` says which reports make this run.
        branch: The branch's name (its key under ``feature_extraction.backbones``).

    Returns:
        The model-input features (:func:`collect_features`) and the gathered report (the
        shards' counts added up, each shard's under ``shards``).
    """
    if "shard_index" in extraction_shards:  # one report (a catalog without the shard store)
        extraction_shards = {
            shard_key(extraction_shards["shard_index"], extraction_shards["num_shards"]):
            extraction_shards
        }  # fmt: skip
    report = gather_reports(extraction_shards, runtime.num_shards, branch=branch)
    return collect_features(split_manifest, feature_cache, report), report
