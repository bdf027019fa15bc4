"""ensemble_training on real images alone: synthetic fakes of the train reals are the fakes.

A team with many reals and no labelled fake in its train split: without synthetic fakes the
node cannot train (one class); with them it trains on reals + their self-blends, through the
real extraction and training nodes on the tiny demo data.

Not asserted here: that such a model separates the demo's ``self_blended`` test fakes. On data
small enough for a test (240-800 images at 64-128 px) the spectral head memorises its ~100
training pairs and that test AUC moved between 0.47 and 0.69 across seeds and sizes; the
transfer measured on 1,000 demo images is in docs/models.md instead.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from deepfake_kedro.datasets import FeatureCacheDataset
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig
from deepfake_kedro.pipelines.ensemble_training.nodes import train_ensemble
from deepfake_kedro.pipelines.feature_extraction.nodes import collect_features, extract_features
from deepfake_kedro.training import TrainingConfig, build_model, predict_proba
from deepfake_kedro.training.augmentation import AugmentationConfig
from deepfake_kedro.training.inputs import features_for_rows, synthetic_arrays
from deepfake_kedro.training.synthetic import SyntheticFakesConfig

RUNTIME = ExtractionConfig(batch_size=16, num_workers=0, progress=False)
SYNTHETIC = SyntheticFakesConfig(enabled=True, per_real=2)
PARAMS = TrainingConfig(epochs=12, patience=12, batch_size=16, device="cpu")


class _NoState:
    def load(self):
        return None

    def save(self, checkpoint):
        pass


@pytest.fixture(scope="module")
def reals_only(split_manifest, tiny_demo_dir, tmp_path_factory):
    """The split manifest without its train-split fakes, and spectral features with the
    synthetic fakes of the train reals (val and test keep their labelled fakes)."""
    cache = FeatureCacheDataset(path=str(tmp_path_factory.mktemp("cache"))).load()
    report = extract_features(
        split_manifest, ImageStore(str(tiny_demo_dir)), cache,
        BackboneConfig(kind="spectral", image_size=64), RUNTIME, AugmentationConfig(views=0),
        SYNTHETIC, branch="spectral",
    )  # fmt: skip
    table = collect_features(split_manifest, cache, report)
    is_train_fake = (split_manifest["split"] == "train") & (split_manifest["label"] == "fake")
    return split_manifest[~is_train_fake], table


def _train(manifest, table):
    return train_ensemble(manifest, {"fingerprint": "f" * 64}, _NoState(), PARAMS, spectral=table)


def test_without_synthetic_fakes_reals_alone_cannot_train(reals_only):
    manifest, table = reals_only
    plain = {k: v for k, v in table.items() if not k.startswith("synthetic_")}
    with pytest.raises(ValueError, match="one class only"):
        _train(manifest, plain)


def test_with_synthetic_fakes_reals_alone_train_a_usable_model(reals_only, caplog):
    manifest, table = reals_only
    n_reals = int(((manifest["split"] == "train") & (manifest["label"] == "real")).sum())
    assert (manifest.loc[manifest["split"] == "train", "label"] == "real").all()
    with caplog.at_level(logging.INFO):
        checkpoint, metrics, _, _ = _train(manifest, table)
    assert f"{n_reals} images + 0 augmented views + {2 * n_reals} synthetic fakes" in caplog.text
    assert 0 <= checkpoint["best_metric"] <= 1 and metrics["best_epoch"]["value"] >= 1

    model = build_model(checkpoint)
    test = manifest[manifest["split"] == "test"]
    scores = predict_proba(model, features_for_rows(test, {"spectral": table}, ["spectral"]))
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    # The fakes reached the loss as fakes: the model ranks them above the reals they were
    # made from (on its own training rows, so this checks the labels, not generalisation).
    reals = manifest[(manifest["split"] == "train") & (manifest["label"] == "real")]
    real_scores = predict_proba(model, features_for_rows(reals, {"spectral": table}, ["spectral"]))
    fake_scores = predict_proba(
        model, synthetic_arrays(manifest, {"spectral": table}, ["spectral"])[0]
    )
    assert len(fake_scores) == 2 * n_reals
    assert fake_scores.mean() > real_scores.mean()
