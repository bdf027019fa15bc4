import pytest
from kedro.io import DatasetError

from deepfake_kedro.datasets import ImageStoreDataset
from deepfake_kedro.io import ImageStore


def test_load_returns_store_rooted_at_path(tmp_path):
    (tmp_path / "x.png").write_bytes(b"1")
    dataset = ImageStoreDataset(path=str(tmp_path))
    store = dataset.load()
    assert isinstance(store, ImageStore)
    assert store.read_bytes("x.png") == b"1"
    assert dataset.exists()
    assert not ImageStoreDataset(path=str(tmp_path / "missing")).exists()


def test_save_is_refused_with_a_reason(tmp_path):
    with pytest.raises(DatasetError, match="read-only"):
        ImageStoreDataset(path=str(tmp_path)).save(object())
