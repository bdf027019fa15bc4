"""Manifest validation, grouped train/val/test split, dataset fingerprint, quality report."""

from deepfake_kedro.ingestion.config import IngestionConfig, SplitConfig
from deepfake_kedro.ingestion.fingerprint import dataset_fingerprint
from deepfake_kedro.ingestion.report import data_quality_report, plot_data_quality
from deepfake_kedro.ingestion.split import split_by_source
from deepfake_kedro.ingestion.validation import (
    LABELS,
    REQUIRED_COLUMNS,
    DataValidationError,
    validate_manifest,
)

__all__ = [
    "LABELS",
    "REQUIRED_COLUMNS",
    "DataValidationError",
    "IngestionConfig",
    "SplitConfig",
    "data_quality_report",
    "dataset_fingerprint",
    "plot_data_quality",
    "split_by_source",
    "validate_manifest",
]
