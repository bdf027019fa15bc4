"""feature_extraction fanned out over two shards: each shard runs the extraction node alone (as
a mapped Airflow task does), the gather step collects the same features as a one-shard run."""

from __future__ import annotations

import inspect
from functools import cache, reduce
from pathlib import Path
from typing import get_type_hints

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from pydantic import BaseModel

from deepfake_kedro import project
from deepfake_kedro.datasets import ExtractionShardsDataset, FeatureCacheDataset
from deepfake_kedro.features import ExtractionConfig, MissingShardsError
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig
from deepfake_kedro.pipelines.feature_extraction import create_pipeline
from deepfake_kedro.pipelines.feature_extraction.pipeline import SHARDED_TAG
from deepfake_kedro.training.augmentation import AugmentationConfig

BACKBONES = {
    "spectral": BackboneConfig(kind="spectral", image_size=64),
    "resnet": BackboneConfig(kind="resnet", arch="resnet18", image_size=64),
}


@cache
def _configured() -> dict:
    """The project's parameters (conf/base), for those the test does not set."""
    return project.parameters(Path(__file__).resolve().parents[3])


class KeptDataset(MemoryDataset):
    def _release(self) -> None:
        pass


def _catalog(split_manifest, images, root, *, shard_index: int, num_shards: int) -> DataCatalog:
    pipeline = create_pipeline(branches=list(BACKBONES))
    runtime = ExtractionConfig(
        batch_size=8, num_workers=0, progress=False, shard_index=shard_index,
        num_shards=num_shards,
    )  # fmt: skip
    datasets = {
        "split_manifest": MemoryDataset(split_manifest),
        "raw_images": MemoryDataset(ImageStore(str(images)), copy_mode="assign"),
        "params:feature_extraction.runtime": MemoryDataset(runtime),
        "params:feature_extraction.augmentation": MemoryDataset(AugmentationConfig(views=1)),
        **{
            f"params:feature_extraction.backbones.{b}": MemoryDataset(c)
            for b, c in BACKBONES.items()
        },
        **{f"{b}.feature_cache": FeatureCacheDataset(path=str(root / b)) for b in BACKBONES},
        **{
            f"{b}.extraction_shards": ExtractionShardsDataset(path=str(root / "reports" / b))
            for b in BACKBONES
        },
    }
    # Any other parameter a node reads: the project's configured value, typed as the node says.
    for node in pipeline.nodes:
        hints = get_type_hints(node.func)
        signature = inspect.signature(node.func).parameters.values()
        for name, parameter in zip(node.inputs, signature, strict=False):
            if name.startswith("params:") and name not in datasets:
                value = reduce(dict.get, name.removeprefix("params:").split("."), _configured())
                kind = hints.get(parameter.name)
                typed = isinstance(kind, type) and issubclass(kind, BaseModel)
                datasets[name] = MemoryDataset(kind.model_validate(value) if typed else value)
    outputs = {
        n: KeptDataset(copy_mode="assign") for n in pipeline.all_outputs() if n not in datasets
    }
    return DataCatalog({**datasets, **outputs})


def _run(pipeline, catalog: DataCatalog) -> dict:
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


@pytest.fixture(scope="module")
def one_shard(split_manifest, tiny_demo_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("one_shard")
    catalog = _catalog(split_manifest, tiny_demo_dir, root, shard_index=0, num_shards=1)
    return _run(create_pipeline(branches=list(BACKBONES)), catalog)


def test_two_shards_then_the_gather_equal_one_shard(
    one_shard, split_manifest, tiny_demo_dir, tmp_path
):
    pipeline = create_pipeline(branches=list(BACKBONES))
    extract = pipeline.only_nodes_with_tags(SHARDED_TAG)
    assert {n.name for n in extract.nodes} == {f"{b}.extract_features_node" for b in BACKBONES}
    shard_reports = []
    for index in range(2):
        catalog = _catalog(split_manifest, tiny_demo_dir, tmp_path, shard_index=index, num_shards=2)
        shard_reports.append(_run(extract, catalog))
    gather = pipeline - extract
    out = _run(
        gather, _catalog(split_manifest, tiny_demo_dir, tmp_path, shard_index=0, num_shards=2)
    )

    n_unique = split_manifest["content_hash"].nunique()
    for branch in BACKBONES:
        report = out[f"{branch}.extraction_report"]
        assert report["num_shards"] == 2 and len(report["shards"]) == 2
        assert (
            report["n_extracted"]
            == n_unique
            == one_shard[f"{branch}.extraction_report"]["n_extracted"]
        )
        assert 0 < report["shards"][0]["n_extracted"] < n_unique
        sharded, single = (
            out[f"{branch}.model_input_features"],
            one_shard[f"{branch}.model_input_features"],
        )
        assert set(sharded) == set(single)
        for name in ("content_hash", "augmented_hash", "augmented_view", "identity", "backbone"):
            np.testing.assert_array_equal(sharded[name], single[name])
        for name in ("features", "augmented_features"):
            np.testing.assert_allclose(sharded[name], single[name], rtol=1e-5, atol=1e-6)


def test_the_gather_names_a_shard_that_has_not_run(split_manifest, tiny_demo_dir, tmp_path):
    pipeline = create_pipeline(branches=["spectral"])
    extract = pipeline.only_nodes_with_tags(SHARDED_TAG)
    _run(extract, _catalog(split_manifest, tiny_demo_dir, tmp_path, shard_index=1, num_shards=2))
    catalog = _catalog(split_manifest, tiny_demo_dir, tmp_path, shard_index=0, num_shards=2)
    with pytest.raises(MissingShardsError, match=r"spectral: extraction shard\(s\) \[0\] of 2"):
        SequentialRunner().run(pipeline - extract, catalog)
