import json
import os
import pickle
import uuid

import fsspec
import numpy as np
import pandas as pd
import pytest

from deepfake_kedro.features import (
    CacheIdentityError,
    FeatureCacheRoot,
    MissingFeaturesError,
    cache_key,
    iter_features,
    update_cache,
)
from deepfake_kedro.io.image_store import ImageStore


def reference_features(manifest, store, extractor, config):
    """Features straight from the engine, by content hash."""
    out = {}
    for hashes, features in iter_features(manifest, store, extractor, config):
        out.update(zip(hashes, features, strict=True))
    return out


@pytest.fixture
def cache_root(tmp_path):
    return FeatureCacheRoot(str(tmp_path / "cache"))


def test_cache_key_is_stable_and_order_independent():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert len(cache_key({"a": 1})) == 16
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_second_run_extracts_nothing_and_new_images_only_are_extracted(
    manifest, store, image_root, extractor, config, cache_root, make_images
):
    cache = cache_root.open(extractor.identity())
    first = update_cache(manifest, store, extractor, cache, config)
    assert first["n_manifest"] == 41 and first["n_unique"] == 40
    assert first["n_extracted"] == 40 and first["n_cached"] == 0
    assert first["n_shard_files_written"] == 3  # 16 + 16 + 8 rows
    json.dumps(first)  # JSON-ready

    second = update_cache(manifest, store, extractor, cache, config)
    assert second["n_extracted"] == 0 and second["n_cached"] == 40

    grown = pd.concat(
        [manifest, make_images(image_root, 4, seed=7, prefix="new")], ignore_index=True
    )
    third = update_cache(grown, store, extractor, cache_root.open(extractor.identity()), config)
    assert third["n_extracted"] == 4 and third["n_cached"] == 40
    assert cache.cached_hashes() == set(grown["content_hash"])


def test_identity_change_uses_a_new_cache_and_the_old_one_is_restored(
    manifest, store, extractor, config, cache_root, make_extractor
):
    base = update_cache(manifest, store, extractor, cache_root.open(extractor.identity()), config)
    resized = make_extractor(size=24)
    changed = update_cache(manifest, store, resized, cache_root.open(resized.identity()), config)
    assert changed["cache_path"] != base["cache_path"]
    assert changed["n_extracted"] == 40
    again = make_extractor()
    restored = update_cache(manifest, store, again, cache_root.open(again.identity()), config)
    assert restored["cache_path"] == base["cache_path"] and restored["n_extracted"] == 0
    assert os.path.basename(base["cache_path"]) == f"resnet-{cache_key(extractor.identity())}"


def test_load_returns_rows_in_the_requested_order(manifest, store, extractor, config, cache_root):
    cache = cache_root.open(extractor.identity())
    update_cache(manifest, store, extractor, cache, config)
    expected = reference_features(manifest, store, extractor, config)
    wanted = manifest["content_hash"].tolist()[::-1] + [manifest["content_hash"].iloc[3]] * 2
    loaded = cache_root.open(extractor.identity()).load(wanted)
    assert loaded.dtype == np.float32 and loaded.shape == (len(wanted), extractor.feature_dim)
    np.testing.assert_allclose(loaded, np.stack([expected[h] for h in wanted]), rtol=1e-6)
    assert cache.load([]).shape == (0, extractor.feature_dim)


def test_missing_hashes_give_a_clear_error(manifest, store, extractor, config, cache_root):
    cache = cache_root.open(extractor.identity())
    update_cache(manifest.head(10), store, extractor, cache, config)
    with pytest.raises(MissingFeaturesError) as caught:
        cache.load(manifest["content_hash"].tolist())
    message = str(caught.value)
    assert isinstance(caught.value, KeyError)
    assert "30 of 40" in message  # 40 unique hashes (row 40 repeats row 5), 10 cached
    assert manifest["content_hash"].iloc[10] in message
    assert "run feature_extraction" in message


def test_a_folder_with_another_identity_is_refused(
    manifest, store, extractor, config, cache_root, make_extractor
):
    cache = cache_root.open(extractor.identity())
    update_cache(manifest.head(4), store, extractor, cache, config)
    other = make_extractor(seed=3)
    os.rename(cache.path, cache.path.replace(cache.key, cache_key(other.identity())))
    with pytest.raises(CacheIdentityError, match="different extractor identity"):
        cache_root.open(other.identity())


def test_update_refuses_a_cache_opened_for_another_extractor(
    manifest, store, extractor, config, cache_root, make_extractor
):
    cache = cache_root.open(make_extractor(seed=9).identity())
    with pytest.raises(CacheIdentityError, match="another identity"):
        update_cache(manifest, store, extractor, cache, config)


def test_meta_records_identity_and_dim(manifest, store, extractor, config, cache_root):
    cache = cache_root.open(extractor.identity())
    assert cache.feature_dim is None and cache.cached_hashes() == set()
    update_cache(manifest.head(4), store, extractor, cache, config)
    meta = json.loads(open(os.path.join(cache.path, "meta.json")).read())
    assert meta["identity"] == extractor.identity() and meta["feature_dim"] == extractor.feature_dim
    assert "created" in meta


def test_an_interrupted_write_leaves_no_readable_partial_shard(
    manifest, store, extractor, config, cache_root, monkeypatch
):
    cache = cache_root.open(extractor.identity())
    update_cache(manifest.head(8), store, extractor, cache, config)
    shards = cache.shards()
    files = set(os.listdir(cache.path))
    features = np.ones((5, extractor.feature_dim), np.float32)
    new = manifest["content_hash"].iloc[10:15].tolist()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("deepfake_kedro.features.cache.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.write(new, features)
    monkeypatch.undo()
    monkeypatch.setattr("deepfake_kedro.features.cache.pq.write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.write(new, features)
    monkeypatch.undo()

    assert set(os.listdir(cache.path)) == files  # no temporary or partial file left
    reopened = cache_root.open(extractor.identity())
    assert reopened.shards() == shards
    assert not set(new) & reopened.cached_hashes()
    assert reopened.load(manifest["content_hash"].iloc[:8]).shape == (8, extractor.feature_dim)


def test_a_failed_run_keeps_finished_rows_and_the_rerun_resumes(
    manifest, store, extractor, config, cache_root, monkeypatch
):
    calls = {"n": 0}
    forward = type(extractor).forward

    def failing_forward(self, images):
        calls["n"] += 1
        if calls["n"] == 4:  # after 3 batches of 8: one shard of 16 written, 8 rows buffered
            raise RuntimeError("GPU fell off the bus")
        return forward(self, images)

    monkeypatch.setattr(type(extractor), "forward", failing_forward)
    cache = cache_root.open(extractor.identity())
    with pytest.raises(RuntimeError, match="fell off"):
        update_cache(manifest, store, extractor, cache, config)
    assert len(cache.cached_hashes()) == 24
    monkeypatch.undo()
    report = update_cache(manifest, store, extractor, cache, config)
    assert report["n_cached"] == 24 and report["n_extracted"] == 16


def test_handles_pickle_and_hide_credentials(extractor, tmp_path):
    secret = {"key": "AKIA", "secret": "hunter2"}
    root = FeatureCacheRoot(str(tmp_path))
    assert pickle.loads(pickle.dumps(root)) == root
    cache = root.open(extractor.identity())
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.path == cache.path and clone.key == cache.key
    assert "hunter2" not in repr(FeatureCacheRoot("s3://bucket/x", secret))


def test_works_on_an_fsspec_memory_root(manifest, image_root, extractor, config):
    fs = fsspec.filesystem("memory")
    images = f"memory://images-{uuid.uuid4().hex}"
    for path in manifest["image_path"]:
        fs.pipe_file(f"{images}/{path}", (image_root / path).read_bytes())
    store = ImageStore(images)
    root = FeatureCacheRoot(f"memory://cache-{uuid.uuid4().hex}/features")
    assert not root.exists()
    cache = root.open(extractor.identity())
    first = update_cache(manifest, store, extractor, cache, config)
    assert first["n_extracted"] == 40 and first["cache_path"].startswith("memory://")
    assert root.exists()
    second = update_cache(manifest, store, extractor, root.open(extractor.identity()), config)
    assert second["n_extracted"] == 0
    expected = reference_features(manifest, store, extractor, config)
    wanted = manifest["content_hash"].tolist()
    np.testing.assert_allclose(
        cache.load(wanted), np.stack([expected[h] for h in wanted]), rtol=1e-6
    )
    assert not [p for p in fs.find(cache.path) if ".tmp" in p]
