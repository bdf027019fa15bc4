"""Branches that learn from pixels inside training: they learn, resume, round-trip, and score
in inference exactly as training evaluated them; a fine-tuned backbone's weights change."""

from __future__ import annotations

import hashlib
import io
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from deepfake_kedro.datasets import TorchCheckpointDataset
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.inference.detector import Detector
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import build_extractor
from deepfake_kedro.training import TrainingConfig, train_fusion
from deepfake_kedro.training.augmentation import AugmentationConfig
from deepfake_kedro.training.checkpoint import trained_branches, with_lineage
from deepfake_kedro.training.trainable import (
    TrainableInputs,
    TrainingBatches,
    embed,
    preprocess_rows,
)

PIXEL = {"kind": "srm_cnn", "image_size": 64, "seed": 0, "options": {"train_crop": 48}}
RUNTIME = ExtractionConfig(batch_size=8, num_workers=0, device="cpu", progress=False)
SPLITS = {"train": 48, "val": 20, "test": 20}


class Interrupted(Exception):
    """Raised from on_epoch_end: a crash after an epoch was persisted."""


def _scene(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A smooth random colour field with mild sensor-like noise, uint8 HxWx3."""
    low = rng.uniform(40, 210, size=(3, 4, 4))
    field = np.stack([np.kron(c, np.ones((size // 4, size // 4))) for c in low], axis=-1)
    field = field + rng.normal(0, 1.5, field.shape)
    return np.clip(field, 0, 255)


@pytest.fixture(scope="module")
def pattern_images(tmp_path_factory) -> tuple[ImageStore, pd.DataFrame]:
    """Reals: smooth scenes. Fakes: the same kind of scene plus a faint 2 px checkerboard
    (+-2 grey levels): a trivial, purely high-frequency signal."""
    root: Path = tmp_path_factory.mktemp("pattern_images")
    rng = np.random.default_rng(0)
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 4 - 2)[..., None]
    rows = []
    for split, n in SPLITS.items():
        for i in range(n):
            fake = i % 2 == 1
            pixels = _scene(rng) + (checker if fake else 0)
            buffer = io.BytesIO()
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "PNG")
            path = f"{split}_{i:03d}.png"
            (root / path).write_bytes(buffer.getvalue())
            rows.append({
                "image_path": path, "label": "fake" if fake else "real", "split": split,
                "content_hash": hashlib.sha256(buffer.getvalue()).hexdigest(),
            })  # fmt: skip
    return ImageStore(str(root)), pd.DataFrame(rows)


def _split(manifest: pd.DataFrame, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    rows = manifest[manifest["split"] == split].reset_index(drop=True)
    return rows, (rows["label"] == "fake").to_numpy(dtype=np.int64)


def _config(**overrides) -> TrainingConfig:
    values = {"epochs": 10, "patience": 10, "batch_size": 8, "learning_rate": 3e-3,
              "warmup_epochs": 1, "seed": 0, "device": "cpu"}  # fmt: skip
    return TrainingConfig.model_validate({**values, **overrides})


def _train(store, manifest, config, *, pixel=PIXEL, augmentation=None, **kwargs):
    train_rows, y_train = _split(manifest, "train")
    val_rows, y_val = _split(manifest, "val")
    inputs = TrainableInputs(
        extractors={"pixel": build_extractor(pixel, param_key="pixel")},
        store=store,
        train_rows=train_rows,
        val_rows=val_rows,
        augmentation=augmentation,
    )
    result = train_fusion({}, y_train, {}, y_val, config, trainable=inputs, **kwargs)
    return result, inputs


@pytest.fixture(scope="module")
def trained(pattern_images):
    store, manifest = pattern_images
    # torch imports its compiler stack on the first use_deterministic_algorithms call (~10 s,
    # once per process): not part of training.
    torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled())
    # CPU time, not wall time: what training costs, whatever else shares the machine.
    started = time.process_time()
    result, inputs = _train(store, manifest, _config(epochs=4))
    return result, inputs, time.process_time() - started


def _checkpoint(result) -> dict:
    return with_lineage(
        result.checkpoint,
        backbones=result.branch_identities,
        backbone_configs={"pixel": PIXEL},
        dataset_fingerprint="f" * 64,
    )


def test_the_pixel_branch_learns_a_high_frequency_pattern(pattern_images, trained):
    store, manifest = pattern_images
    result, _, seconds = trained
    test_rows, y_test = _split(manifest, "test")
    scores = Detector(_checkpoint(result)).score(test_rows, store, RUNTIME)
    assert roc_auc_score(y_test, scores) > 0.9
    assert result.best_val_auc > 0.9
    assert seconds < 30


def test_inference_scores_the_validation_images_as_training_evaluated_them(pattern_images, trained):
    """The detector rebuilt from the checkpoint (the registered model's code path) gives the
    validation AUC the training loop recorded for its best epoch, and the same features."""
    store, manifest = pattern_images
    result, inputs, _ = trained
    val_rows, y_val = _split(manifest, "val")
    detector = Detector(_checkpoint(result))
    assert roc_auc_score(y_val, detector.score(val_rows, store, RUNTIME)) == pytest.approx(
        result.best_val_auc, abs=1e-9
    )
    in_training = embed(inputs.extractors["pixel"], preprocess_rows(inputs, val_rows)["pixel"],
                        torch.device("cpu"))  # fmt: skip
    torch.testing.assert_close(
        torch.from_numpy(detector.features(val_rows, store, RUNTIME)["pixel"]),
        in_training, rtol=0, atol=1e-5,
    )  # fmt: skip


def test_the_checkpoint_round_trip_keeps_the_branch_weights(pattern_images, trained, tmp_path):
    store, manifest = pattern_images
    result, _, _ = trained
    checkpoint = _checkpoint(result)
    assert trained_branches(checkpoint) == ["pixel"]
    assert checkpoint["backbones"]["pixel"]["weights"].startswith("trained:")
    dataset = TorchCheckpointDataset(filepath=str(tmp_path / "fusion_checkpoint.pt"))
    dataset.save(checkpoint)
    loaded = dataset.load()
    for key, value in checkpoint["best_branch_state"]["pixel"].items():
        assert torch.equal(loaded["best_branch_state"]["pixel"][key], value), key
    test_rows, _ = _split(manifest, "test")
    np.testing.assert_array_equal(
        Detector(loaded).score(test_rows, store, RUNTIME),
        Detector(checkpoint).score(test_rows, store, RUNTIME),
    )


def test_a_rebuilt_branch_whose_weights_changed_is_refused(trained):
    result, _, _ = trained
    checkpoint = _checkpoint(result)
    state = {k: v.clone() for k, v in checkpoint["best_branch_state"]["pixel"].items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] += 1.0
    tampered = {**checkpoint, "best_branch_state": {"pixel": state}}
    with pytest.raises(ValueError, match="backbone 'pixel' rebuilt from the checkpoint differs"):
        Detector(tampered)


def test_each_epoch_reports_its_progress(pattern_images, caplog):
    store, manifest = pattern_images
    with caplog.at_level(logging.INFO, logger="deepfake_kedro.training.loop"):
        _train(store, manifest, _config(epochs=1))
    assert "Trainable branches (end to end, float32 on cpu): pixel (srm_cnn, 120,640" in caplog.text
    assert "epoch   1/1 | train loss" in caplog.text


def test_trainable_epochs_replace_epochs(pattern_images):
    store, manifest = pattern_images
    result, _ = _train(store, manifest, _config(epochs=50, trainable={"epochs": 1}))
    assert len(result.history) == 1 and result.checkpoint["config"]["epochs"] == 1


def test_training_images_are_the_same_for_a_seed_epoch_and_row(pattern_images):
    """On-the-fly augmentation and crops: one draw per (seed, epoch, row), whatever the order
    or the worker count; another epoch draws again."""
    store, manifest = pattern_images
    rows, _ = _split(manifest, "train")
    augmentation = AugmentationConfig(views=0, noise={"p": 1.0, "range": (2.0, 4.0)})
    inputs = TrainableInputs(
        {"pixel": build_extractor(PIXEL)}, store, rows, rows, augmentation=augmentation
    )

    def epoch_pixels(epoch: int, order: list[int], workers: int = 0) -> dict[int, torch.Tensor]:
        batches = TrainingBatches(inputs, seed=7, batch_size=5, num_workers=workers)
        out = {}
        for index, pixels in batches.epoch(epoch, torch.tensor(order)):
            out.update(zip(index.tolist(), pixels["pixel"], strict=True))
        return out

    order = list(range(len(rows)))
    first = epoch_pixels(1, order)
    again = epoch_pixels(1, order[::-1], workers=2)
    assert all(torch.equal(first[i], again[i]) for i in order)
    assert first[0].shape == (3, 48, 48)  # the train crop
    later = epoch_pixels(2, order)
    assert sum(not torch.equal(first[i], later[i]) for i in order) > len(order) // 2


def test_resume_with_a_trainable_branch_continues_bit_for_bit(pattern_images):
    store, manifest = pattern_images
    config = _config(epochs=3)
    whole, _ = _train(store, manifest, config)

    saved = []

    def crash_after_first(state):
        saved.append(state)
        raise Interrupted

    with pytest.raises(Interrupted):
        _train(store, manifest, config, on_epoch_end=crash_after_first)
    resumed, _ = _train(store, manifest, config.model_copy(update={"resume": True}),
                        resume_from=saved[-1])  # fmt: skip
    assert [h.val_auc for h in resumed.history] == [h.val_auc for h in whole.history]
    for key, value in whole.checkpoint["branch_state"]["pixel"].items():
        assert torch.equal(resumed.checkpoint["branch_state"]["pixel"][key], value), key


def test_trainable_rows_must_line_up_with_the_labels(pattern_images):
    store, manifest = pattern_images
    rows, y = _split(manifest, "train")
    inputs = TrainableInputs({"pixel": build_extractor(PIXEL)}, store, rows.iloc[:-1], rows)
    with pytest.raises(ValueError, match="47 train image rows for 48 train labels"):
        train_fusion({}, y, {}, y, _config(), trainable=inputs)


def test_finetune_trains_the_backbone_at_its_own_learning_rate(pattern_images):
    """A fine-tuned ResNet's weights change (at 0.1x the head's learning rate), next to a
    frozen branch whose features come precomputed."""
    store, manifest = pattern_images
    resnet = {"kind": "resnet", "arch": "resnet18", "image_size": 32, "train_mode": "finetune"}
    initial = build_extractor(resnet).trained_state()
    train_rows, y_train = _split(manifest, "train")
    val_rows, y_val = _split(manifest, "val")
    frozen = {"spectral": np.random.default_rng(0).normal(size=(len(y_train), 4)).astype("f4")}
    frozen_val = {"spectral": np.random.default_rng(1).normal(size=(len(y_val), 4)).astype("f4")}
    extractor = build_extractor(resnet)
    inputs = TrainableInputs({"resnet": extractor}, store, train_rows, val_rows)
    saved = []
    result = train_fusion(frozen, y_train, frozen_val, y_val, _config(epochs=2, learning_rate=1e-3),
                          trainable=inputs, on_epoch_end=saved.append)  # fmt: skip

    assert result.checkpoint["config"]["branches"] == ["spectral", "resnet"]
    best = result.checkpoint["best_branch_state"]["resnet"]
    changed = [
        k for k, v in best.items() if v.is_floating_point() and not torch.equal(v, initial[k])
    ]
    weights = [
        k for k in initial if k.endswith("weight") and "bn" not in k and "downsample.1" not in k
    ]
    assert set(weights) <= set(changed)
    # Frozen BatchNorm: the running statistics are the initial ones.
    stats = [k for k in initial if k.endswith("running_mean")]
    assert stats and all(torch.equal(best[k], initial[k]) for k in stats)
    lrs = {g["lr_scale"] for g in saved[-1]["optimizer_state"]["param_groups"]}
    assert lrs == {1.0, 0.1}
    assert result.branch_identities["resnet"]["initial_weights"] == "none:seed=0"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_training_uses_float16_autocast_with_a_loss_scaler(pattern_images, caplog):
    store, manifest = pattern_images
    with caplog.at_level(logging.INFO, logger="deepfake_kedro.training.loop"):
        result, _ = _train(store, manifest, _config(epochs=3, device="cuda"))
    assert "float16 autocast + loss scaling on cuda" in caplog.text
    assert result.checkpoint["scaler_state"] is not None
    assert result.best_val_auc > 0.9
    # The weights are float32 and score on the CPU as the CUDA run evaluated them.
    val_rows, y_val = _split(manifest, "val")
    scores = Detector(_checkpoint(result)).score(val_rows, store, RUNTIME)
    assert roc_auc_score(y_val, scores) == pytest.approx(result.best_val_auc, abs=1e-6)
