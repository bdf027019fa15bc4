"""Score a table of images with a detector: fake probability and the decision at a threshold."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deepfake_kedro.features.cache import canonical_json
from deepfake_kedro.inference.config import InferenceConfig
from deepfake_kedro.inference.detector import Detector
from deepfake_kedro.inference.images import ID_COLUMN, ImageBatch

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = (
    ID_COLUMN,
    "image_path",
    "fake_probability",
    "is_fake",
    "prediction",
    "threshold",
    "content_hash",
    "error",
)

# A served model scores many requests with one checkpoint (kedro-mlflow hands each predict
# call a fresh copy of it): build the backbones, the slow part, once per backbone set.
_BACKBONES: OrderedDict[str, dict[str, Any]] = OrderedDict()
_BACKBONES_LOCK = threading.Lock()
_MAX_BACKBONE_SETS = 2


def detector_for(checkpoint: Mapping[str, Any]) -> Detector:
    """A :class:`Detector` for the checkpoint, reusing backbones built for an equal one."""
    key = canonical_json(
        {"configs": checkpoint.get("backbone_configs"), "identities": checkpoint.get("backbones")}
    )
    with _BACKBONES_LOCK:
        extractors = _BACKBONES.get(key)
        if extractors is not None:
            _BACKBONES.move_to_end(key)
        detector = Detector(checkpoint, extractors=extractors)
        _BACKBONES[key] = detector.extractors
        while len(_BACKBONES) > _MAX_BACKBONE_SETS:
            _BACKBONES.popitem(last=False)
        return detector


def operating_threshold(validation_results: Mapping[str, Any], config: InferenceConfig) -> float:
    """The decision threshold: the configured override, else the one validation chose."""
    if config.threshold is not None:
        return float(config.threshold)
    threshold = validation_results.get("threshold") if validation_results else None
    if threshold is None:
        raise ValueError(
            "the validation results hold no operating threshold: run the validation pipeline "
            "for this checkpoint, or set inference.threshold"
        )
    return float(threshold)


def score_batch(
    batch: ImageBatch, detector: Detector, threshold: float, config: InferenceConfig
) -> pd.DataFrame:
    """Fake probability and decision per row, in input order.

    Returns:
        Columns :data:`PREDICTION_COLUMNS`, indexed 0..n-1. Unreadable rows have ``error`` set,
        ``fake_probability`` and ``is_fake`` ``None`` and ``prediction`` ``"error"``; missing
        values are ``None`` in every column, never NaN, so the frame serialises to strict
        JSON.

    Raises:
        ValueError: if ``on_unreadable`` is ``fail`` and some image cannot be used.
    """
    table = batch.table
    failed = table[table["error"].notna()]
    if len(failed) and config.on_unreadable == "fail":
        head = failed.head(20)
        # image_path is missing (None or NaN, by pandas version) for inline bytes
        sources = head["image_path"].fillna("image_bytes")
        listed = "; ".join(
            f"{image_id} ({source}): {error}"
            for image_id, source, error in zip(head[ID_COLUMN], sources, head["error"], strict=True)
        )
        raise ValueError(
            f"{len(failed)} of {len(table)} images cannot be scored: {listed}. Fix or drop "
            "them, or set inference.on_unreadable=flag to score the rest"
        )
    if len(failed):
        logger.warning("%d of %d images cannot be scored (see the 'error' column)", len(failed), len(table))

    probability = np.full(len(table), np.nan)
    readable = batch.readable
    if len(readable):
        positions = table.index.get_indexer(readable.index)
        probability[positions] = detector.score(readable, batch.store, config.runtime)
    scored = np.isfinite(probability)
    decided = probability >= threshold
    errors = [
        error if error is not None or ok else "ValueError: the model gave no finite score"
        for error, ok in zip(_nullable(table["error"].tolist()), scored, strict=True)
    ]
    return pd.DataFrame(
        {
            ID_COLUMN: _nullable(table[ID_COLUMN].tolist()),
            "image_path": _nullable(table["image_path"].tolist()),
            "fake_probability": _nullable(
                [float(p) if ok else None for p, ok in zip(probability, scored, strict=True)]
            ),
            "is_fake": _nullable(
                [bool(d) if ok else None for d, ok in zip(decided, scored, strict=True)]
            ),
            "prediction": _nullable(
                [
                    ("fake" if d else "real") if ok else "error"
                    for d, ok in zip(decided, scored, strict=True)
                ]
            ),
            "threshold": np.full(len(table), float(threshold)),
            "content_hash": _nullable(table["content_hash"].tolist()),
            "error": _nullable(errors),
        }
    )


def _nullable(values: list[Any]) -> pd.Series:
    """An object column whose missing values are ``None``.

    The model's output is served as JSON (``mlflow models serve`` turns the frame into
    records): ``None`` becomes ``null``, whereas NaN (float and, in pandas 3, string columns)
    becomes the invalid ``NaN`` token and ``pd.NA`` fails to serialise at all.
    """
    missing = [v is None or v is pd.NA or (isinstance(v, float) and v != v) for v in values]
    return pd.Series([None if m else v for v, m in zip(values, missing, strict=True)], dtype=object)
