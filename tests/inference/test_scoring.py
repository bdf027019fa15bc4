"""score_batch's decisions, the operating threshold, and detector_for's backbone reuse."""

from __future__ import annotations

import base64
import copy
import io
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.inference import scoring
from deepfake_kedro.inference.config import InferenceConfig
from deepfake_kedro.inference.images import read_image_table
from deepfake_kedro.inference.scoring import (
    PREDICTION_COLUMNS,
    detector_for,
    operating_threshold,
    score_batch,
)
from deepfake_kedro.models import BackboneConfig, build_extractor
from deepfake_kedro.training import TrainingConfig, train_fusion

CPU = ExtractionConfig(batch_size=8, num_workers=0, device="cpu", progress=False)


def png_b64(seed: int, size: int = 16) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class FixedScores:
    """Stands in for Detector in score_batch: a known probability per engine key."""

    def __init__(self, by_key: dict[str, float]) -> None:
        self.by_key = by_key
        self.seen: list[list[str]] = []

    def score(self, rows: pd.DataFrame, store, runtime) -> np.ndarray:
        self.seen.append(rows["image_path"].tolist())
        assert all(store.read_bytes(key) for key in rows["image_path"])
        return np.array([self.by_key[key] for key in rows["image_path"]])


@pytest.fixture
def batch():
    """Four rows in a shuffled index; the third is not an image."""
    frame = pd.DataFrame(
        {
            "image_id": ["a", "b", "bad", "d"],
            "image_bytes": [png_b64(1), png_b64(2), "%%% not base64", png_b64(4)],
        },
        index=[30, 10, 20, 40],
    )
    return read_image_table(frame)


SCORES = {"row-0": 0.5, "row-1": 0.4999, "row-3": 0.9}


def test_decision_at_threshold_and_unreadable_rows(batch):
    detector = FixedScores(SCORES)
    out = score_batch(batch, detector, 0.5, InferenceConfig())

    assert list(out.columns) == list(PREDICTION_COLUMNS)
    assert out.index.tolist() == [0, 1, 2, 3]
    assert out["image_id"].tolist() == ["a", "b", "bad", "d"]  # input order
    # missing is None (JSON null), never NaN
    assert out["fake_probability"].tolist() == [0.5, 0.4999, None, 0.9]
    assert out["is_fake"].tolist() == [True, False, None, True]  # >= threshold is fake
    assert out["prediction"].tolist() == ["fake", "real", "error", "fake"]
    assert out["threshold"].tolist() == [0.5] * 4
    assert out["error"].notna().tolist() == [False, False, True, False]
    assert out["error"].iloc[2].startswith("ValueError: image_bytes is not valid base64")
    hashes = batch.table["content_hash"]
    assert out["content_hash"].tolist() == [None if pd.isna(h) else h for h in hashes]
    # the detector only ever sees readable images, once, in input order
    assert detector.seen == [["row-0", "row-1", "row-3"]]


def test_threshold_moves_the_decision(batch):
    out = score_batch(batch, FixedScores(SCORES), 0.95, InferenceConfig())
    assert out["prediction"].tolist() == ["real", "real", "error", "real"]
    out = score_batch(batch, FixedScores(SCORES), 0.0, InferenceConfig())
    assert out["prediction"].tolist() == ["fake", "fake", "error", "fake"]


def test_all_unreadable_scores_nothing():
    batch = read_image_table(pd.DataFrame({"image_path": ["/nonexistent/x.png", None]}))
    detector = FixedScores({})
    out = score_batch(batch, detector, 0.5, InferenceConfig())
    assert detector.seen == []
    assert out["prediction"].tolist() == ["error", "error"]
    assert out["fake_probability"].isna().all() and out["is_fake"].isna().all()


def test_on_unreadable_fail_names_the_rows(batch):
    detector = FixedScores(SCORES)
    with pytest.raises(ValueError, match="1 of 4 images cannot be scored") as info:
        score_batch(batch, detector, 0.5, InferenceConfig(on_unreadable="fail"))
    message = str(info.value)
    assert "bad (image_bytes): ValueError: image_bytes is not valid base64" in message
    assert "on_unreadable=flag" in message
    assert detector.seen == []


def test_on_unreadable_fail_scores_a_clean_batch():
    batch = read_image_table(pd.DataFrame({"image_bytes": [png_b64(1), png_b64(2)]}))
    out = score_batch(
        batch, FixedScores({"row-0": 0.2, "row-1": 0.8}), 0.5, InferenceConfig(on_unreadable="fail")
    )
    assert out["prediction"].tolist() == ["real", "fake"]


def test_operating_threshold_override_else_validation():
    results = {"threshold": np.float64(0.7)}
    assert operating_threshold(results, InferenceConfig(threshold=0.3)) == 0.3
    assert operating_threshold(results, InferenceConfig(threshold=0.0)) == 0.0  # 0 is a value
    chosen = operating_threshold(results, InferenceConfig())
    assert chosen == 0.7 and type(chosen) is float
    assert operating_threshold({}, InferenceConfig(threshold=0.4)) == 0.4


@pytest.mark.parametrize("results", [{}, None, {"threshold": None, "metrics": {}}])
def test_operating_threshold_missing_raises(results):
    with pytest.raises(ValueError, match="no operating threshold.*inference.threshold"):
        operating_threshold(results, InferenceConfig())


# -------------------------------------------------------------- detector_for with a real model


@pytest.fixture(scope="module")
def spectral_checkpoint() -> dict:
    """A real spectral-only checkpoint: a head trained briefly on random features."""
    extractor = build_extractor(BackboneConfig(kind="spectral", image_size=64))
    rng = np.random.default_rng(0)
    x = {"spectral": rng.normal(size=(40, extractor.feature_dim)).astype(np.float32)}
    y = np.array([0, 1] * 20)
    result = train_fusion(
        x, y, x, y, TrainingConfig(branches=["spectral"], epochs=2, batch_size=16, device="cpu")
    )
    return with_backbone(result.checkpoint, image_size=64)


def with_backbone(checkpoint: dict, image_size: int) -> dict:
    config = BackboneConfig(kind="spectral", image_size=image_size)
    return {
        **checkpoint,
        "backbones": {"spectral": build_extractor(config).identity()},
        "backbone_configs": {"spectral": config.model_dump(mode="json")},
    }


@pytest.fixture(autouse=True)
def empty_backbone_cache(monkeypatch):
    monkeypatch.setattr(scoring, "_BACKBONES", OrderedDict())


def test_equal_checkpoints_reuse_the_backbones(spectral_checkpoint):
    first = detector_for(copy.deepcopy(spectral_checkpoint))
    second = detector_for(copy.deepcopy(spectral_checkpoint))
    assert first.extractors["spectral"] is second.extractors["spectral"]

    other = detector_for(with_backbone(spectral_checkpoint, image_size=32))
    assert other.extractors["spectral"] is not first.extractors["spectral"]
    assert other.extractors["spectral"].identity()["preprocessing"]["image_size"] == 32


def test_backbone_cache_keeps_the_two_most_recent_sets(spectral_checkpoint):
    a = spectral_checkpoint
    b = with_backbone(spectral_checkpoint, image_size=32)
    c = with_backbone(spectral_checkpoint, image_size=48)
    kept_a = detector_for(a).extractors["spectral"]
    kept_b = detector_for(b).extractors["spectral"]
    assert detector_for(a).extractors["spectral"] is kept_a  # a is now the most recent
    detector_for(c)  # evicts b, the least recently used
    assert len(scoring._BACKBONES) == 2
    assert detector_for(a).extractors["spectral"] is kept_a
    assert detector_for(b).extractors["spectral"] is not kept_b


def test_real_detector_scores_a_batch(spectral_checkpoint, tiny_demo_dir):
    manifest = pd.read_csv(tiny_demo_dir / "manifest.csv").head(5)
    frame = pd.DataFrame(
        {"image_path": list(manifest["image_path"]) + ["missing.png"]}
    )
    batch = read_image_table(frame, base_dir=str(tiny_demo_dir))
    detector = detector_for(spectral_checkpoint)
    config = InferenceConfig(runtime=CPU)
    out = score_batch(batch, detector, 0.5, config)

    assert out["prediction"].tolist()[-1] == "error"
    probability = out["fake_probability"].to_numpy(dtype=float)[:5]
    assert np.all((probability >= 0) & (probability <= 1))
    np.testing.assert_allclose(
        probability, detector.score(batch.readable, batch.store, CPU), rtol=1e-6
    )
    assert out["is_fake"].tolist()[:5] == list(probability >= 0.5)
