"""The s3 environment is the base catalog moved into the lake by globals (no S3 server needed).

conf/s3/catalog*.yml only list the entries that differ in more than their location; every
other dataset is the base entry, whose root, credentials and fs_args come from globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deepfake_kedro.project import config_loader

ROOT = Path(__file__).resolve().parents[2]
MLFLOW = {"mlflow": ["mlflow*", "mlflow*/**"]}


@pytest.fixture(autouse=True)
def _default_lake(monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LAKE_BUCKET", raising=False)
    monkeypatch.delenv("DEEPFAKE_LAKE_PREFIX", raising=False)


def _locations(catalog: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Entry -> (path, the mapping holding it), for every entry stored in files."""
    out = {}
    for name, entry in catalog.items():
        holder = entry.get("dataset", entry) if isinstance(entry.get("dataset"), dict) else entry
        for key in ("filepath", "path"):
            if key in holder:
                out[name] = (str(holder[key]), holder)
    return out


def test_every_file_dataset_is_in_the_lake_with_its_credentials_and_retries():
    base = config_loader(ROOT, "base")["catalog"]
    s3 = config_loader(ROOT, "s3")["catalog"]
    assert set(s3) == set(base)
    locations = _locations(s3)
    assert set(locations) == set(_locations(base))
    for name, (path, holder) in locations.items():
        assert path.startswith("s3://deepfake-lake/deepfake_kedro/"), name
        assert holder["credentials"] == "s3_lake", name
        assert holder["fs_args"]["config_kwargs"]["retries"]["mode"] == "adaptive", name
    assert s3["raw_images"]["allowed_roots"] == ["s3://deepfake-lake"]
    assert s3["fusion_checkpoint"]["type"].endswith("MlflowRemoteArtifactDataset")


def test_base_paths_stay_under_data_without_credentials():
    for name, (path, holder) in _locations(config_loader(ROOT, "base")["catalog"]).items():
        assert path.startswith("data/"), name
        assert not holder.get("credentials") and not holder.get("fs_args"), name


def test_runtime_params_move_the_lake_of_the_catalog_and_of_mlflow():
    # globals cannot read runtime_params: conf/s3/globals.yml escapes them so that they are
    # resolved where the catalog and mlflow.yml read the lake root.
    params = {"lake_bucket": "other-bucket", "lake_prefix": "batch7/x"}
    loader = config_loader(ROOT, "s3", params, config_patterns=MLFLOW)
    catalog = loader["catalog"]
    for name, (path, _) in _locations(catalog).items():
        assert path.startswith("s3://other-bucket/batch7/x/"), name
    assert catalog["raw_images"]["allowed_roots"] == ["s3://other-bucket"]
    experiment = loader["mlflow"]["tracking"]["experiment"]
    assert experiment["create_experiment_kwargs"]["artifact_location"] == (
        "s3://other-bucket/batch7/x/mlartifacts"
    )


def test_environment_variables_set_the_lake(monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LAKE_BUCKET", "env-bucket")
    monkeypatch.setenv("DEEPFAKE_LAKE_PREFIX", "team")
    catalog = config_loader(ROOT, "s3", {"raw_manifest_path": "s3://b/m.csv"})["catalog"]
    assert catalog["raw_manifest"]["filepath"] == "s3://b/m.csv"
    assert catalog["validated_manifest"]["filepath"] == (
        "s3://env-bucket/team/02_intermediate/validated_manifest.parquet"
    )
