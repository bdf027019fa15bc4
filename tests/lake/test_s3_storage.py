"""The project's storage layer against a real S3 server: image store and datasets on s3://."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from deepfake_kedro.datasets import (
    CheckpointStoreDataset,
    FeatureCacheDataset,
    ImageStoreDataset,
    NpzDataset,
    TorchCheckpointDataset,
)
from deepfake_kedro.io import ImageStore, PathEscapeError

RETRIES = {"config_kwargs": {"retries": {"max_attempts": 3, "mode": "adaptive"}}}


@pytest.fixture
def images(lake_server, bucket) -> str:
    """s3://bucket/raw with two images, plus one object outside raw/ and one in another bucket."""
    client = lake_server.client()
    client.put_object(Bucket=bucket, Key="raw/images/a.png", Body=b"aaa")
    client.put_object(Bucket=bucket, Key="raw/images/b.png", Body=b"bbb")
    client.put_object(Bucket=bucket, Key="shared/c.png", Body=b"ccc")
    return f"s3://{bucket}/raw"


def test_image_store_reads_relative_paths_and_absolute_uris_under_allowed_roots(
    lake_server, bucket, images
):
    store = ImageStoreDataset(
        path=images,
        credentials={
            "key": lake_server.key,
            "secret": lake_server.secret,
            "client_kwargs": {"endpoint_url": lake_server.endpoint_url},
        },
        fs_args=RETRIES,
        allowed_roots=[f"s3://{bucket}"],
    ).load()
    assert store.read_bytes("images/a.png") == b"aaa"
    assert store.read_bytes(f"s3://{bucket}/raw/images/b.png") == b"bbb"
    assert store.read_bytes(f"s3://{bucket}/shared/c.png") == b"ccc"  # allowed: same bucket
    with pytest.raises(PathEscapeError, match="allowed_roots"):
        store.resolve("s3://another-bucket/raw/images/a.png")
    with pytest.raises(PathEscapeError):
        store.resolve("../shared/c.png")  # relative paths stay under the manifest's folder
    clone = pickle.loads(pickle.dumps(store))  # DataLoader workers
    assert clone.read_bytes(f"s3://{bucket}/shared/c.png") == b"ccc"


def test_image_store_without_allowed_roots_refuses_other_prefixes(lake_server, bucket, images):
    store = ImageStore(images, lake_server.storage_options())
    with pytest.raises(PathEscapeError, match="outside the image root"):
        store.resolve(f"s3://{bucket}/shared/c.png")


def test_read_many_fetches_a_batch_and_reports_bad_paths_in_place(lake_server, bucket, images):
    store = ImageStore(images, lake_server.storage_options(**RETRIES))
    results = store.read_many(
        ["images/a.png", "images/missing.png", "../x.png", "images/b.png", "images/a.png"]
    )
    assert results[0] == b"aaa" and results[3] == b"bbb" and results[4] == b"aaa"
    assert isinstance(results[1], FileNotFoundError)
    assert isinstance(results[2], PathEscapeError)
    assert store.read_many(["images/b.png"]) == [b"bbb"]


def test_wrong_secret_is_a_permission_error(lake_server, images):
    store = ImageStore(images, lake_server.storage_options(secret="wrong"))
    with pytest.raises(PermissionError):
        store.read_bytes("images/a.png")


def test_file_datasets_round_trip_on_s3(lake_server, bucket):
    creds = lake_server.storage_options()
    npz = NpzDataset(filepath=f"s3://{bucket}/05/x.npz", credentials=creds, fs_args=RETRIES)
    assert not npz.exists()
    npz.save({"a": np.arange(3)})
    assert npz.exists() and npz.load()["a"].tolist() == [0, 1, 2]

    checkpoint = TorchCheckpointDataset(filepath=f"s3://{bucket}/06/c.pt", credentials=creds)
    checkpoint.save({"w": torch.ones(2), "epoch": 3})
    assert checkpoint.load()["epoch"] == 3

    state = CheckpointStoreDataset(filepath=f"s3://{bucket}/06/state.pt", credentials=creds).load()
    assert state.load() is None
    state.save({"epoch": 1})
    assert state.load() == {"epoch": 1}


def test_feature_cache_dataset_on_s3(lake_server, bucket):
    root = FeatureCacheDataset(
        path=f"s3://{bucket}/04_feature/resnet", credentials=lake_server.storage_options()
    ).load()
    cache = root.open({"kind": "resnet", "weights": "none"})
    cache.write(["h1", "h2"], np.ones((2, 4), dtype=np.float32))
    assert cache.cached_hashes() == {"h1", "h2"}
    assert cache.load(["h2"]).shape == (1, 4)
    assert root.exists()
