from pathlib import PurePosixPath

import mlflow
import numpy as np
import pytest
import torch
from kedro.io import DatasetError

from deepfake_kedro.datasets import (
    CheckpointStoreDataset,
    MlflowTagsDataset,
    NpzDataset,
    TorchCheckpointDataset,
)


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    dataset = TorchCheckpointDataset(filepath=str(tmp_path / "models" / "head.pt"))
    assert not dataset.exists()
    checkpoint = {"state": {"w": torch.arange(3.0)}, "config": {"lr": 0.1}, "epoch": 4}
    dataset.save(checkpoint)
    loaded = dataset.load()
    assert torch.equal(loaded["state"]["w"], torch.arange(3.0)) and loaded["epoch"] == 4
    assert not list((tmp_path / "models").glob("*.tmp"))


def test_missing_checkpoint_says_which_pipeline_to_run(tmp_path):
    with pytest.raises(DatasetError, match="run the ensemble_training pipeline"):
        TorchCheckpointDataset(filepath=str(tmp_path / "none.pt")).load()


def test_assigning_filepath_moves_the_checkpoint_dataset(tmp_path):
    # kedro-mlflow points a packaged model's datasets at the model's own copy this way.
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"which": "a"}, first)
    torch.save({"which": "b"}, second)
    dataset = TorchCheckpointDataset(filepath=str(first))
    assert dataset._filepath.as_posix() == first.as_posix()
    dataset._filepath = second
    assert dataset.load() == {"which": "b"}


def test_checkpoint_dataset_pickled_by_an_older_version_still_loads(tmp_path):
    # A registered model holds a pickled dataset from the code of its day.
    path = tmp_path / "c.pt"
    torch.save({"x": 2}, path)
    dataset = TorchCheckpointDataset(filepath=str(path))
    old_state = {k: v for k, v in dataset.__dict__.items() if k != "_model_uri"}
    old_state["_filepath"] = PurePosixPath("/somewhere/else.pt")  # an instance attribute then
    restored = TorchCheckpointDataset.__new__(TorchCheckpointDataset)
    restored.__setstate__(old_state)
    assert restored.load() == {"x": 2}
    restored._filepath = path  # what kedro-mlflow does when the model loads
    assert restored.load() == {"x": 2}


def test_remote_checkpoint_keeps_its_protocol(tmp_path):
    dataset = TorchCheckpointDataset(filepath="memory://lake/06_models/c.pt")
    dataset.save({"x": 1})
    assert dataset.load() == {"x": 1}
    assert dataset._location == "memory://lake/06_models/c.pt"
    assert not (tmp_path / "lake").exists()


def test_checkpoint_with_model_uri_refuses_to_be_overwritten(tmp_path):
    dataset = TorchCheckpointDataset(
        filepath=str(tmp_path / "c.pt"), model_uri="models:/deepfake-detector/3"
    )
    with pytest.raises(DatasetError, match="cannot be combined with training"):
        dataset.save({"x": 1})
    assert not (tmp_path / "c.pt").exists()
    with pytest.raises(ValueError, match="models:/<name>@<alias>"):
        TorchCheckpointDataset(filepath=str(tmp_path / "c.pt"), model_uri="runs:/abc/model")
    # An empty model_uri (the catalog's default) is the plain file.
    plain = TorchCheckpointDataset(filepath=str(tmp_path / "c.pt"), model_uri="")
    plain.save({"x": 1})
    assert plain.load() == {"x": 1}


def test_checkpoint_refuses_arbitrary_objects_on_load(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"fn": print}, path)  # a pickled callable: not allowed with weights_only
    with pytest.raises(DatasetError):
        TorchCheckpointDataset(filepath=str(path)).load()


def test_checkpoint_store_handle_saves_and_resumes(tmp_path):
    store = CheckpointStoreDataset(filepath=str(tmp_path / "state.pt")).load()
    assert store.load() is None
    store.save({"epoch": 2})
    assert store.load() == {"epoch": 2}
    with pytest.raises(DatasetError, match="read-only"):
        CheckpointStoreDataset(filepath=str(tmp_path / "state.pt")).save({"epoch": 3})


def test_npz_round_trip_without_pickle(tmp_path):
    dataset = NpzDataset(filepath=str(tmp_path / "f" / "x.npz"))
    data = {"content_hash": np.array(["a", "b"]), "features": np.ones((2, 3), np.float32)}
    dataset.save(data)
    loaded = dataset.load()
    assert loaded["content_hash"].tolist() == ["a", "b"]
    assert loaded["features"].dtype == np.float32 and loaded["features"].shape == (2, 3)


def test_mlflow_tags_go_to_the_active_run(mlflow_tracking):
    dataset = MlflowTagsDataset()
    dataset.save({"ignored": "no run"})  # no active run: a logged no-op, no new run
    assert mlflow.search_runs(search_all_experiments=True).empty
    with mlflow.start_run() as run:
        dataset.save({"backbones": "resnet=resnet50", "best_val_auc": 0.9})
        assert dataset.load()["backbones"] == "resnet=resnet50"
    assert mlflow.get_run(run.info.run_id).data.tags["best_val_auc"] == "0.9"
