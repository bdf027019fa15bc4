import pickle

import numpy as np
import pytest
from kedro.io import DatasetError

from deepfake_kedro.datasets.feature_cache import FeatureCacheDataset
from deepfake_kedro.features import FeatureCache, FeatureCacheRoot


def test_load_gives_a_working_root(tmp_path):
    dataset = FeatureCacheDataset(path=str(tmp_path / "features"), fs_args={"auto_mkdir": True})
    root = dataset.load()
    assert isinstance(root, FeatureCacheRoot)
    assert pickle.loads(pickle.dumps(root)) == root
    cache = root.open({"kind": "resnet", "weights": "test"})
    assert isinstance(cache, FeatureCache)
    cache.write(["aa", "bb"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(
        dataset.load().open({"kind": "resnet", "weights": "test"}).load(["bb"]), [[3, 4, 5]]
    )


def test_exists_follows_the_root_folder(tmp_path):
    dataset = FeatureCacheDataset(path=str(tmp_path / "features"))
    assert not dataset.exists()
    (tmp_path / "features").mkdir()
    assert dataset.exists()


def test_save_is_refused_with_a_reason(tmp_path):
    dataset = FeatureCacheDataset(path=str(tmp_path), credentials={"secret": "hunter2"})
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(object())
    assert "hunter2" not in str(dataset)
