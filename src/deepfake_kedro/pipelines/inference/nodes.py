"""Thin nodes of the inference pipelines."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from deepfake_kedro.datasets.registered_model import RegisteredDetector
from deepfake_kedro.inference import (
    ImageBatch,
    InferenceConfig,
    detector_for,
    operating_threshold,
    read_image_table,
    score_batch,
)
from deepfake_kedro.inference.images import ID_COLUMN, INPUT_COLUMNS
from deepfake_kedro.inference.paths import allow_roots
from deepfake_kedro.values import utc_now

logger = logging.getLogger(__name__)


def _config(params: InferenceConfig | dict[str, Any]) -> InferenceConfig:
    # Inside the registered model the pipeline runs without a Kedro session, whose parameter
    # validation would otherwise have turned the dict into the typed config.
    return InferenceConfig.model_validate(params)


def read_images(inference_images: pd.DataFrame, params: InferenceConfig) -> ImageBatch:
    """Read, check and hash the images to score (unreadable ones are flagged per row)."""
    params = _config(params)
    return read_image_table(
        inference_images,
        base_dir=params.base_dir,
        storage_options=params.storage_options,
        max_image_mb=params.max_image_mb,
        allowed_roots=params.allowed_roots,
    )


def score_images(
    image_batch: ImageBatch,
    fusion_checkpoint: dict[str, Any],
    validation_results: dict[str, Any],
    params: InferenceConfig,
) -> pd.DataFrame:
    """Fake probability of each image and the decision at the validated operating threshold."""
    params = _config(params)
    threshold = operating_threshold(validation_results, params)
    return score_batch(image_batch, detector_for(fusion_checkpoint), threshold, params)


def score_with_registered_model(
    registered_detector: RegisteredDetector,
    inference_images: pd.DataFrame,
    params: InferenceConfig,
) -> pd.DataFrame:
    """Score a manifest or folder with a registered version, chunk by chunk.

    Every row of the result names the model version that produced it (``model_name``,
    ``model_version``, ``model_uri``, ``model_run_id``) and when (``scored_at``); input
    columns other than the image itself (``label``, ``source_id``, ...) are carried along.
    The model may read the images the input lists (it is this run's own input) on top of its
    packaged ``inference.allowed_roots``.
    """
    inputs = [c for c in (ID_COLUMN, *INPUT_COLUMNS) if c in inference_images.columns]
    frame = inference_images[inputs].copy()
    if ID_COLUMN in frame.columns:
        frame[ID_COLUMN] = frame[ID_COLUMN].astype(str)
    chunks = []
    total = len(frame)
    for start in range(0, total, params.chunk_size):
        chunk = frame.iloc[start : start + params.chunk_size].reset_index(drop=True)
        with allow_roots(chunk["image_path"] if "image_path" in chunk else ()):
            predicted = pd.DataFrame(registered_detector.model.predict(chunk))
        chunks.append(predicted)
        logger.info(
            "Scored %d/%d images with %s", min(start + params.chunk_size, total), total,
            registered_detector.model_uri,
        )
    scores = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    extra = inference_images.drop(columns=[c for c in inputs if c != ID_COLUMN], errors="ignore")
    extra = extra.drop(columns=[c for c in extra.columns if c in scores.columns], errors="ignore")
    scores = pd.concat([scores, extra.reset_index(drop=True)], axis=1)
    scores["model_name"] = registered_detector.name
    scores["model_version"] = registered_detector.version
    scores["model_uri"] = registered_detector.model_uri
    scores["model_run_id"] = registered_detector.run_id
    scores["scored_at"] = utc_now()
    _log_summary(scores, registered_detector)
    return scores


def _log_summary(scores: pd.DataFrame, model: RegisteredDetector) -> None:
    counts = scores["prediction"].value_counts() if "prediction" in scores else pd.Series()
    logger.info(
        "%s version %s: %d images, %d fake, %d real, %d unreadable",
        model.name,
        model.version,
        len(scores),
        int(counts.get("fake", 0)),
        int(counts.get("real", 0)),
        int(counts.get("error", 0)),
    )
