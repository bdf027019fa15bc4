"""Fixtures for pipeline tests: the tiny demo data validated and split, as a pipeline sees it."""

import pandas as pd
import pytest

from deepfake_kedro.ingestion import IngestionConfig, split_by_source, validate_manifest
from deepfake_kedro.io import ImageStore


@pytest.fixture(scope="session")
def split_manifest(tiny_demo_dir) -> pd.DataFrame:
    config = IngestionConfig(min_group_size=2, num_workers=2)
    valid, _ = validate_manifest(
        pd.read_csv(tiny_demo_dir / "manifest.csv"), ImageStore(str(tiny_demo_dir)), config
    )
    return split_by_source(valid, config.split)
