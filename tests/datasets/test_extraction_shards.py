"""ExtractionShardsDataset: one report file per shard, all of them loaded by name."""

from __future__ import annotations

import json

import pytest
from kedro.io import DatasetError

from deepfake_kedro.datasets import ExtractionShardsDataset


def test_each_shard_writes_its_own_file_and_load_returns_all(tmp_path):
    dataset = ExtractionShardsDataset(path=str(tmp_path / "resnet"))
    assert not dataset.exists()
    for index in (1, 0):
        dataset.save({"shard_index": index, "num_shards": 2, "n_extracted": 10 + index})
    dataset.save({"shard_index": 0, "num_shards": 2, "n_extracted": 7})  # shard 0 again
    files = sorted(p.name for p in (tmp_path / "resnet").iterdir())
    assert files == ["shard-0000-of-0002.json", "shard-0001-of-0002.json"]
    loaded = dataset.load()
    assert {k: v["n_extracted"] for k, v in loaded.items()} == {
        "shard-0000-of-0002": 7,
        "shard-0001-of-0002": 11,
    }
    assert dataset.exists()


def test_other_files_are_ignored_and_an_empty_folder_is_an_error(tmp_path):
    root = tmp_path / "clip"
    root.mkdir()
    (root / "notes.json").write_text(json.dumps({"x": 1}))
    dataset = ExtractionShardsDataset(path=str(root))
    with pytest.raises(DatasetError, match="no extraction shard report under .*extract_features"):
        dataset.load()
    dataset.save({"shard_index": 0, "num_shards": 1})
    assert list(dataset.load()) == ["shard-0000-of-0001"]


def test_a_report_without_its_shard_is_refused(tmp_path):
    dataset = ExtractionShardsDataset(path=str(tmp_path / "spectral"))
    with pytest.raises(DatasetError, match="needs integer 'shard_index' and 'num_shards'"):
        dataset.save({"n_extracted": 3})
