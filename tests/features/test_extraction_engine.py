import logging

import numpy as np
import pandas as pd
import pytest
import torch

from deepfake_kedro.features import ImageReadError, engine, iter_features


def collect(rows, store, extractor, config):
    hashes, blocks = [], []
    for batch_hashes, features in iter_features(rows, store, extractor, config):
        assert features.dtype == np.float32
        assert features.shape == (len(batch_hashes), extractor.feature_dim)
        assert len(batch_hashes) <= config.batch_size
        hashes.extend(batch_hashes)
        blocks.append(features)
    return hashes, np.concatenate(blocks)


def test_yields_every_row_in_order(manifest, store, extractor, config):
    hashes, features = collect(manifest, store, extractor, config)
    assert hashes == manifest["content_hash"].tolist()
    assert features.shape == (len(manifest), extractor.feature_dim)
    # The repeated image (row 40 is a copy of row 5) gets the same features.
    np.testing.assert_allclose(features[40], features[5], rtol=1e-6)


def test_values_do_not_depend_on_workers_or_batch_size(manifest, store, extractor, config):
    base_hashes, base = collect(
        manifest, store, extractor, config.model_copy(update={"batch_size": 3})
    )
    other_hashes, other = collect(
        manifest, store, extractor, config.model_copy(update={"batch_size": 16, "num_workers": 2})
    )
    assert other_hashes == base_hashes
    np.testing.assert_allclose(other, base, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_unreadable_image_names_its_path(
    manifest, store, image_root, extractor, config, num_workers
):
    (image_root / "images" / "broken.png").write_bytes(b"not a png at all")
    rows = pd.concat(
        [
            manifest.head(3),
            pd.DataFrame([{"image_path": "images/broken.png", "content_hash": "ab" * 32}]),
        ],
        ignore_index=True,
    )
    with pytest.raises(ImageReadError, match=r"images/broken\.png") as caught:
        collect(rows, store, extractor, config.model_copy(update={"num_workers": num_workers}))
    assert "data_ingestion" in str(caught.value)


def test_bf16_autocast_stays_close_to_fp32(manifest, store, extractor, config):
    _, fp32 = collect(manifest, store, extractor, config)
    _, bf16 = collect(manifest, store, extractor, config.model_copy(update={"precision": "bf16"}))
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16, fp32, atol=0.1 * np.abs(fp32).max())


def test_failed_compile_falls_back_to_eager(
    manifest, store, extractor, config, monkeypatch, caplog
):
    def broken_compile(model, *args, **kwargs):
        def run(images):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(engine, "_COMPILED", {})
    _, eager = collect(manifest, store, extractor, config)
    with caplog.at_level(logging.WARNING, logger="deepfake_kedro.features"):
        _, compiled = collect(
            manifest,
            store,
            extractor,
            config.model_copy(update={"compile": True, "compile_min_images": 0}),
        )
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)
    assert "falling back" in caplog.text and "no C++ compiler" in caplog.text
    assert engine._COMPILED == {}  # a broken compilation is not reused by the next pass


class _CountingCompile:
    """Stands in for torch.compile: counts compilations and records the batch shapes the
    compiled callable sees (the model runs eagerly inside)."""

    def __init__(self) -> None:
        self.compiled: list[torch.nn.Module] = []
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, model, *args, **kwargs):
        self.compiled.append(model)

        def run(images):
            self.shapes.append(tuple(images.shape))
            return model(images)

        return run


def test_a_backbone_compiles_once_per_process_and_never_sees_a_new_batch_shape(
    manifest, store, extractor, config, monkeypatch, caplog
):
    FakeExtractor = type(extractor)  # the conftest's class
    counting = _CountingCompile()
    monkeypatch.setattr(torch, "compile", counting)
    monkeypatch.setattr(engine, "_COMPILED", {})
    compiled_config = config.model_copy(
        update={"compile": True, "compile_min_images": 0, "batch_size": 16}
    )
    _, eager = collect(manifest, store, FakeExtractor(), config)
    with caplog.at_level(logging.INFO, logger="deepfake_kedro.features"):
        _, first = collect(manifest, store, FakeExtractor(), compiled_config)
        # a second node of the same run builds its own extractor of the same identity
        _, second = collect(manifest, store, FakeExtractor(), compiled_config)
    assert len(counting.compiled) == 1
    assert "reusing the extractor compiled earlier in this process" in caplog.text
    assert len(manifest) % 16  # the last batch is short, and is padded to the compiled shape
    assert {shape[0] for shape in counting.shapes} == {16}
    np.testing.assert_allclose(first, eager, rtol=1e-6)
    np.testing.assert_allclose(second, eager, rtol=1e-6)
    # another identity (seed) is another compilation
    collect(manifest, store, FakeExtractor(seed=1), compiled_config)
    assert len(counting.compiled) == 2


@pytest.mark.parametrize(
    ("compile_setting", "min_images", "compiles"),
    [
        (["resnet"], 0, True),  # the fake extractor's kind
        (["clip"], 0, False),
        (True, 0, True),
        (True, 10_000, False),  # too few images for the compilation to pay
        (False, 0, False),
    ],
)
def test_compile_per_backbone_kind_and_only_for_enough_images(
    manifest, store, extractor, config, monkeypatch, compile_setting, min_images, compiles
):
    counting = _CountingCompile()
    monkeypatch.setattr(torch, "compile", counting)
    monkeypatch.setattr(engine, "_COMPILED", {})
    collect(
        manifest,
        store,
        extractor,
        config.model_copy(update={"compile": compile_setting, "compile_min_images": min_images}),
    )
    assert bool(counting.compiled) is compiles


def test_channels_last_off_gives_the_same_values(manifest, store, extractor, config):
    _, on = collect(manifest, store, extractor, config)
    _, off = collect(manifest, store, extractor, config.model_copy(update={"channels_last": False}))
    np.testing.assert_allclose(off, on, rtol=1e-5, atol=1e-6)


def test_progress_bar_and_log_summary(manifest, store, extractor, config, caplog):
    with caplog.at_level(logging.INFO, logger="deepfake_kedro.features"):
        collect(manifest, store, extractor, config.model_copy(update={"progress": True}))
    progress_lines = [
        r for r in caplog.records if "img/s" in r.getMessage() and "%)" in r.getMessage()
    ]
    assert 3 <= len(progress_lines) <= 10
    assert any(f"extracted {len(manifest)} images" in r.getMessage() for r in caplog.records)
    assert any("precision fp32" in r.getMessage() for r in caplog.records)


def test_missing_columns_are_named(manifest, store, extractor, config):
    with pytest.raises(ValueError, match="content_hash"):
        list(iter_features(manifest[["image_path"]], store, extractor, config))


@pytest.mark.slow
def test_real_torch_compile_matches_eager_with_a_padded_last_batch(
    manifest, store, extractor, config, monkeypatch, caplog
):
    """torch.compile itself (inductor), not a stand-in: same features as eager."""
    monkeypatch.setattr(engine, "_COMPILED", {})
    compiled_config = config.model_copy(
        update={"compile": True, "compile_min_images": 0, "batch_size": 16}
    )
    _, eager = collect(manifest, store, extractor, config)
    with caplog.at_level(logging.INFO, logger="deepfake_kedro.features"):
        _, compiled = collect(manifest, store, type(extractor)(), compiled_config)
    assert "falling back" not in caplog.text and "unavailable" not in caplog.text, caplog.text
    assert "first compiled batch took" in caplog.text
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)
