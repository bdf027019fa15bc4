"""Scoring images with a trained detector: the code the registered MLflow model runs."""

from deepfake_kedro.inference.config import InferenceConfig
from deepfake_kedro.inference.detector import Detector
from deepfake_kedro.inference.images import ImageBatch, InlineImageStore, read_image_table
from deepfake_kedro.inference.scoring import (
    PREDICTION_COLUMNS,
    detector_for,
    operating_threshold,
    score_batch,
)

__all__ = [
    "PREDICTION_COLUMNS",
    "Detector",
    "ImageBatch",
    "InferenceConfig",
    "InlineImageStore",
    "detector_for",
    "operating_threshold",
    "read_image_table",
    "score_batch",
]
