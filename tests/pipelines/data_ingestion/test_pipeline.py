"""The data_ingestion pipeline on tiny generated data, run with a DataCatalog + SequentialRunner."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from deepfake_kedro.demo import DemoConfig, write_demo_dataset
from deepfake_kedro.ingestion import DataValidationError, IngestionConfig
from deepfake_kedro.io import ImageStore
from deepfake_kedro.pipelines.data_ingestion import create_pipeline

PARAMS = {"min_group_size": 2, "num_workers": 2}


class KeptDataset(MemoryDataset):
    """Not released by the runner, so the test can read intermediate outputs."""

    def _release(self) -> None:
        pass


def run_pipeline(manifest: pd.DataFrame, root, params=None, config=None) -> dict:
    """Run data_ingestion; ``config`` replaces ``PARAMS`` (+ ``params``) when given."""
    pipeline = create_pipeline()
    config = config or IngestionConfig(**PARAMS, **(params or {}))
    catalog = DataCatalog(
        {
            "raw_manifest": MemoryDataset(manifest),
            "raw_images": MemoryDataset(ImageStore(str(root)), copy_mode="assign"),
            "params:data_ingestion": MemoryDataset(config),
        }
        | {name: KeptDataset(copy_mode="assign") for name in pipeline.all_outputs()}
    )
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


def test_pipeline_validates_splits_and_fingerprints(tiny_demo_dir):
    manifest = pd.read_csv(tiny_demo_dir / "manifest.csv")
    out = run_pipeline(manifest, tiny_demo_dir)

    split = out["split_manifest"]
    assert len(split) == len(manifest)
    assert set(split["split"]) == {"train", "val", "test"}
    assert split.groupby("source_id")["split"].nunique().max() == 1
    for _, part in split.groupby("split"):
        assert set(part["label"]) == {"real", "fake"}

    fingerprint = out["dataset_fingerprint"]
    assert len(fingerprint["fingerprint"]) == 64
    assert fingerprint["n_images"] == len(manifest)

    report = out["data_quality_report"]
    assert report["totals"]["valid"] == len(manifest)
    assert isinstance(out["data_quality_plot"], Figure)


def test_fingerprint_is_stable_and_tracks_image_content(tiny_demo_dir, tmp_path):
    manifest = pd.read_csv(tiny_demo_dir / "manifest.csv")
    first = run_pipeline(manifest, tiny_demo_dir)["dataset_fingerprint"]["fingerprint"]
    again = run_pipeline(manifest.sample(frac=1, random_state=3), tiny_demo_dir)
    assert again["dataset_fingerprint"]["fingerprint"] == first

    copy = tmp_path / "copy"
    shutil.copytree(tiny_demo_dir, copy)
    victim = copy / manifest.loc[0, "image_path"]
    from PIL import Image

    with Image.open(victim) as image:
        pixels = image.convert("RGB")
    pixels.putpixel((0, 0), (0, 0, 0) if pixels.getpixel((0, 0)) != (0, 0, 0) else (9, 9, 9))
    pixels.save(victim)
    changed = run_pipeline(manifest, copy)["dataset_fingerprint"]["fingerprint"]
    assert changed != first


def test_bad_rows_fail_the_run_with_row_and_reason(tiny_demo_dir):
    manifest = pd.read_csv(tiny_demo_dir / "manifest.csv")
    manifest.loc[3, "label"] = "fke"
    manifest.loc[5, "image_path"] = "images/nope.png"
    with pytest.raises(DataValidationError) as excinfo:
        run_pipeline(manifest, tiny_demo_dir)
    message = str(excinfo.value)
    assert "manifest row 4" in message and "fke" in message
    assert "manifest row 6" in message and "images/nope.png" in message


def test_drop_policy_keeps_going_and_records_problems(tiny_demo_dir):
    manifest = pd.read_csv(tiny_demo_dir / "manifest.csv")
    manifest.loc[3, "label"] = "fke"
    out = run_pipeline(manifest, tiny_demo_dir, {"on_invalid": "drop"})
    assert len(out["validated_manifest"]) == len(manifest) - 1
    problems = out["manifest_problems"]
    assert problems["row"].tolist() == [4]
    assert problems["check"].tolist() == ["label"]


def test_a_valid_24_image_manifest_passes_with_the_default_parameters(tmp_path):
    # Its groups are all below the default min_group_size 10 or close to it: they are reported
    # as too small to judge, and every image is kept (they used to reject the manifest).
    root = tmp_path / "demo"
    write_demo_dataset(root, DemoConfig(n_images=24, image_size=64, seed=1), progress=False)
    manifest = pd.read_csv(root / "manifest.csv")
    assert len(manifest) == 24
    out = run_pipeline(manifest, root, config=IngestionConfig())

    assert len(out["validated_manifest"]) == 24 and out["manifest_problems"].empty
    assert len(out["split_manifest"]) == 24
    report = out["data_quality_report"]
    assert report["totals"]["valid"] == 24 and report["totals"]["rejected_rows"] == 0
    small = report["small_groups"]
    assert small["min_group_size"] == 10 and small["groups"]
    counts = manifest["group_a"].value_counts()
    assert small["groups"]["group_a"] == {
        str(v): int(n) for v, n in counts[counts < 10].sort_values().items()
    }
    assert len(report["warnings"]) == sum(len(v) for v in small["groups"].values())
    assert all("too small to judge" in line for line in report["warnings"])
