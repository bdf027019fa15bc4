"""Lining up training rows: the image behind each row a trainable branch reads."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepfake_kedro.training.inputs import augmented_arrays, synthetic_arrays, training_images


def _manifest() -> pd.DataFrame:
    return pd.DataFrame({
        "image_path": ["r0.png", "f0.png", "r1.png", "v0.png"],
        "content_hash": ["h_r0", "h_f0", "h_r1", "h_v0"],
        "label": ["real", "fake", "real", "real"],
        "split": ["train", "train", "train", "val"],
    })  # fmt: skip


def _table(augmented: list[tuple[str, int]], synthetic: list[tuple[str, int]]) -> dict:
    return {
        "content_hash": np.array(["h_r0", "h_f0", "h_r1", "h_v0"]),
        "features": np.zeros((4, 2), np.float32),
        "augmented_hash": np.array([h for h, _ in augmented], dtype=str),
        "augmented_view": np.array([v for _, v in augmented], dtype=np.int64),
        "augmented_features": np.arange(2 * len(augmented), dtype=np.float32).reshape(-1, 2),
        "synthetic_hash": np.array([h for h, _ in synthetic], dtype=str),
        "synthetic_index": np.array([k for _, k in synthetic], dtype=np.int64),
        "synthetic_features": np.ones((len(synthetic), 2), np.float32),
    }


def test_training_images_line_up_with_the_rows_the_frozen_branches_train_on():
    manifest = _manifest()
    # Views of a val image (h_v0) and a fake's synthetic fake (h_f0) do not count; the second
    # branch lacks view 1 of h_r1.
    a = _table([("h_r0", 0), ("h_r1", 1), ("h_v0", 0), ("h_f0", 0)], [("h_r1", 0), ("h_f0", 0)])
    b = _table([("h_f0", 0), ("h_r0", 0), ("h_v0", 0)], [("h_r1", 0), ("h_f0", 0)])
    tables = {"a": a, "b": b}
    rows = training_images(manifest, tables, ["a", "b"])

    n_train = 3
    n_aug = len(augmented_arrays(manifest, tables, ["a", "b"])[1])
    n_syn = len(synthetic_arrays(manifest, tables, ["a", "b"])[1])
    assert len(rows) == n_train + n_aug + n_syn == 3 + 2 + 1
    assert rows["image_path"].tolist() == ["r0.png", "f0.png", "r1.png", "r0.png", "f0.png", "r1.png"]
    assert rows["view"].tolist() == [None] * 5 + ["sbi:0"]


def test_without_frozen_branches_the_rows_are_the_train_split():
    rows = training_images(_manifest(), {}, [])
    assert rows["image_path"].tolist() == ["r0.png", "f0.png", "r1.png"]
    assert rows["view"].isna().all()
