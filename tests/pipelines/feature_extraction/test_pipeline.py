"""feature_extraction on tiny demo data: namespaced branches from the list, cache reuse."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from deepfake_kedro.datasets import FeatureCacheDataset
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig
from deepfake_kedro.pipelines.feature_extraction import create_pipeline
from deepfake_kedro.training.augmentation import AugmentationConfig
from deepfake_kedro.training.synthetic import SyntheticFakesConfig

BACKBONES = {
    "resnet": BackboneConfig(kind="resnet", arch="resnet18", image_size=64),
    "clip": BackboneConfig(kind="clip", arch="ViT-B-32", image_size=64),
    "spectral": BackboneConfig(kind="spectral", image_size=64),
}


class KeptDataset(MemoryDataset):
    """Not released by the runner, so the test can read intermediate outputs."""

    def _release(self) -> None:
        pass


AUGMENTATION = AugmentationConfig(views=1)
SYNTHETIC = SyntheticFakesConfig(enabled=True, per_real=1)


def run(
    split_manifest,
    images_root,
    cache_root,
    backbones=None,
    augmentation=AUGMENTATION,
    synthetic=SYNTHETIC,
) -> dict:
    backbones = backbones or BACKBONES
    pipeline = create_pipeline(branches=list(backbones))
    catalog = DataCatalog(
        {
            "split_manifest": MemoryDataset(split_manifest),
            "raw_images": MemoryDataset(ImageStore(str(images_root)), copy_mode="assign"),
            "params:feature_extraction.runtime": MemoryDataset(
                ExtractionConfig(batch_size=16, num_workers=0, progress=False)
            ),
            "params:feature_extraction.augmentation": MemoryDataset(augmentation),
            "params:feature_extraction.synthetic_fakes": MemoryDataset(synthetic),
        }
        | {
            f"params:feature_extraction.backbones.{b}": MemoryDataset(c)
            for b, c in backbones.items()
        }
        | {f"{b}.feature_cache": FeatureCacheDataset(path=str(cache_root / b)) for b in backbones}
        | {name: KeptDataset(copy_mode="assign") for name in pipeline.all_outputs()}
    )
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


@pytest.fixture(scope="module")
def first_run(split_manifest, tiny_demo_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, run(split_manifest, tiny_demo_dir, cache)


def test_every_branch_extracts_and_collects(first_run, split_manifest):
    _, out = first_run
    n = split_manifest["content_hash"].nunique()
    for branch in BACKBONES:
        report = out[f"{branch}.extraction_report"]
        assert report["n_extracted"] == n and report["precision"] in ("bf16", "fp32")
        table = out[f"{branch}.model_input_features"]
        assert table["features"].shape[0] == n and np.isfinite(table["features"]).all()
        assert set(table["content_hash"]) == set(split_manifest["content_hash"])


def test_training_images_get_augmented_views(first_run, split_manifest):
    _, out = first_run
    n_train = split_manifest.loc[split_manifest["split"] == "train", "content_hash"].nunique()
    for branch in BACKBONES:
        assert out[f"{branch}.extraction_report"]["augmentation"]["n_extracted"] == n_train
        table = out[f"{branch}.model_input_features"]
        assert table["augmented_features"].shape == (n_train, table["features"].shape[1])
        assert set(table["augmented_hash"]) <= set(table["content_hash"])
        # a view is not its clean image
        clean = dict(zip(table["content_hash"], table["features"], strict=True))
        first = table["augmented_hash"][0]
        assert not np.allclose(table["augmented_features"][0], clean[first])


def test_train_reals_get_synthetic_fakes(first_run, split_manifest):
    _, out = first_run
    train = split_manifest[split_manifest["split"] == "train"]
    reals = set(train.loc[train["label"] == "real", "content_hash"])
    for branch in BACKBONES:
        assert out[f"{branch}.extraction_report"]["synthetic_fakes"]["n_extracted"] == len(reals)
        table = out[f"{branch}.model_input_features"]
        assert set(table["synthetic_hash"]) == reals  # no val/test image, no fake
        assert table["synthetic_features"].shape == (len(reals), table["features"].shape[1])
        assert np.isfinite(table["synthetic_features"]).all()
        clean = dict(zip(table["content_hash"], table["features"], strict=True))
        assert not np.allclose(table["synthetic_features"][0], clean[table["synthetic_hash"][0]])


def test_second_run_reads_everything_from_the_cache(first_run, split_manifest, tiny_demo_dir):
    cache, out = first_run
    again = run(split_manifest, tiny_demo_dir, cache)
    for branch in BACKBONES:
        assert again[f"{branch}.extraction_report"]["n_extracted"] == 0
        assert again[f"{branch}.extraction_report"]["augmentation"]["n_extracted"] == 0
        assert again[f"{branch}.extraction_report"]["synthetic_fakes"]["n_extracted"] == 0
        np.testing.assert_array_equal(
            again[f"{branch}.model_input_features"]["synthetic_features"],
            out[f"{branch}.model_input_features"]["synthetic_features"],
        )
        np.testing.assert_array_equal(
            again[f"{branch}.model_input_features"]["augmented_features"],
            out[f"{branch}.model_input_features"]["augmented_features"],
        )
        np.testing.assert_array_equal(
            again[f"{branch}.model_input_features"]["features"],
            out[f"{branch}.model_input_features"]["features"],
        )


def test_the_branches_are_the_list_it_is_built_from(split_manifest, tiny_demo_dir, tmp_path):
    """Two branches, one of them a second ResNet under its own name: nodes, caches and
    features follow the names, nothing else is built."""
    backbones = {
        "spectral": BACKBONES["spectral"],
        "small_resnet": BackboneConfig(kind="resnet", arch="resnet18", image_size=32),
    }
    out = run(split_manifest, tiny_demo_dir, tmp_path, backbones)
    assert {name.split(".")[0] for name in out} == {"spectral", "small_resnet"}
    report = out["small_resnet.extraction_report"]
    assert report["branch"] == "small_resnet" and report["backbone"]["image_size"] == 32
    assert out["small_resnet.model_input_features"]["features"].shape[0] == len(
        split_manifest["content_hash"].unique()
    )
    assert (tmp_path / "small_resnet").is_dir() and not (tmp_path / "resnet").exists()
    nodes = {node.name for node in create_pipeline(branches=list(backbones)).nodes}
    assert nodes == {
        f"{b}.{n}" for b in backbones for n in ("extract_features_node", "collect_features_node")
    }
