"""Nodes of the data_ingestion pipeline: thin adapters over :mod:`deepfake_kedro.ingestion`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from deepfake_kedro.ingestion import (
    IngestionConfig,
    data_quality_report,
    dataset_fingerprint,
    plot_data_quality,
    split_by_source,
    validate_manifest,
)
from deepfake_kedro.io import ImageStore


def validate_raw_data(
    raw_manifest: pd.DataFrame, raw_images: ImageStore, params: IngestionConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check every manifest row and its image; fail or drop bad rows per ``on_invalid``.

    Args:
        raw_manifest: The manifest as loaded from CSV.
        raw_images: Store the manifest's image paths are relative to.
        params: ``data_ingestion`` parameters (validated by Kedro before the run).

    Returns:
        The valid rows (with content hash, size and normalised columns) and one row per
        problem found (``row``, ``image_path``, ``check``, ``reason``).
    """
    return validate_manifest(raw_manifest, raw_images, params)


def report_data_quality(
    validated_manifest: pd.DataFrame, manifest_problems: pd.DataFrame, params: IngestionConfig
) -> tuple[dict[str, Any], Figure]:
    """Summarise counts, balance, image sizes and problems as JSON and a figure.

    Args:
        validated_manifest: Valid rows.
        manifest_problems: Problems found during validation.
        params: ``data_ingestion`` parameters (validated by Kedro before the run).

    Returns:
        The report as a JSON-ready dict and its summary figure.
    """
    report = data_quality_report(
        validated_manifest, manifest_problems, params.group_columns, params.min_group_size
    )
    return report, plot_data_quality(report)


def split_dataset(validated_manifest: pd.DataFrame, params: IngestionConfig) -> pd.DataFrame:
    """Assign train/val/test grouped by ``source_id`` and stratified by label.

    Args:
        validated_manifest: Valid rows.
        params: ``data_ingestion`` parameters (validated by Kedro before the run).

    Returns:
        The manifest with a ``split`` column.
    """
    return split_by_source(validated_manifest, params.split)


def fingerprint_dataset(split_manifest: pd.DataFrame) -> dict[str, Any]:
    """Hash the manifest and image contents for lineage.

    Args:
        split_manifest: The split manifest.

    Returns:
        Fingerprint, counts per split and the captured_at range.
    """
    return dataset_fingerprint(split_manifest)
