"""Synthetic fakes of the training reals: deterministic, keyed, train reals only, joined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfake_kedro.training.inputs import synthetic_arrays
from deepfake_kedro.training.synthetic import (
    SyntheticFakes,
    SyntheticFakesConfig,
    face_boxes,
    synthesize,
    synthetic_key,
    synthetic_rows,
    synthetic_seed,
)

ON = SyntheticFakesConfig(enabled=True, per_real=2)


def _image(seed: int = 0, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(30, 226, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def _manifest() -> pd.DataFrame:
    rows = [
        (f"{split}/{label}{i}.png", label, split, f"{split[:2]}{label[0]}{i}")
        for split in ("train", "val", "test")
        for label in ("real", "fake")
        for i in range(2)
    ]
    frame = pd.DataFrame(rows, columns=["image_path", "label", "split", "content_hash"])
    return frame.assign(source_id=frame["content_hash"])


def test_synthesize_is_deterministic_for_a_seed():
    image = _image()
    first = synthesize(image, 11, ON)
    assert first.size == image.size and first.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(first), np.asarray(synthesize(image, 11, ON)))
    assert not np.array_equal(np.asarray(first), np.asarray(synthesize(image, 12, ON)))
    assert not np.array_equal(np.asarray(first), np.asarray(image))


def test_with_a_face_box_the_blend_stays_in_and_around_it():
    image = _image(size=(96, 96))
    box = (0.35, 0.3, 0.75, 0.8)
    for seed in range(5):
        diff = np.abs(
            np.asarray(synthesize(image, seed, ON, face_box=box), dtype=int)
            - np.asarray(image, dtype=int)
        ).sum(axis=2)
        assert diff.sum() > 0
        inside = diff[int(0.3 * 96) : int(0.8 * 96), int(0.35 * 96) : int(0.75 * 96)].sum()
        assert inside / diff.sum() > 0.85, seed  # only the soft edge spills over


def test_only_real_images_of_the_train_split_get_synthetic_fakes():
    manifest = _manifest()
    rows = synthetic_rows(manifest, ON)
    assert set(rows["image_hash"]) == {"trr0", "trr1"}
    assert len(rows) == 4 and sorted(rows["view_index"]) == [0, 0, 1, 1]
    assert (rows["label"] == "fake").all() and (rows["view"].str.startswith("sbi:")).all()
    assert rows["content_hash"].is_unique
    assert synthetic_rows(manifest, SyntheticFakesConfig()).empty  # disabled
    doubled = pd.concat([manifest, manifest.iloc[[0]].assign(image_path="copy.png")])
    assert len(synthetic_rows(doubled, ON)) == 4  # one image, once


def test_keys_change_with_the_spec_the_face_box_and_the_index():
    key = synthetic_key("ab" * 32, ON, 0)
    assert key.startswith("ab" * 32) and key != synthetic_key("ab" * 32, ON, 1)
    assert key != synthetic_key("ab" * 32, ON.model_copy(update={"seed": 1}), 0)
    blend = ON.blend.model_copy(update={"hue_deg": 10.0})
    assert key != synthetic_key("ab" * 32, ON.model_copy(update={"blend": blend}), 0)
    assert key != synthetic_key("ab" * 32, ON, 0, (0.1, 0.1, 0.9, 0.9))
    # more fakes per real (or switching off and on) keeps the fakes already cached
    assert key == synthetic_key("ab" * 32, ON.model_copy(update={"per_real": 5}), 0)


def test_the_view_store_serves_the_same_fake_as_synthesize(tmp_path):
    from deepfake_kedro.io import ImageStore

    _image(3).save(tmp_path / "a.png")
    store = SyntheticFakes(ImageStore(str(tmp_path)), ON, {"a.png": (0.2, 0.2, 0.8, 0.8)})
    served = np.asarray(store.read_view("a.png", "sbi:1"))
    expected = synthesize(_image(3), synthetic_seed(ON, "a.png", 1), ON, (0.2, 0.2, 0.8, 0.8))
    np.testing.assert_array_equal(served, np.asarray(expected))
    assert not np.array_equal(served, np.asarray(store.read_view("a.png", "sbi:0")))


def test_face_boxes_come_from_the_manifest_and_a_bad_one_names_the_row():
    manifest = _manifest().assign(face_box="")
    manifest.loc[0, "face_box"] = "0.1,0.2,0.9,0.8"
    assert face_boxes(manifest) == {"train/real0.png": (0.1, 0.2, 0.9, 0.8)}
    assert face_boxes(_manifest()) == {}
    manifest.loc[1, "face_box"] = "0.1,0.2"
    with pytest.raises(ValueError, match="manifest row train/real1.png: face_box '0.1,0.2'"):
        face_boxes(manifest)


def test_synthetic_arrays_take_fakes_of_train_reals_every_branch_has():
    manifest = _manifest()

    def table(fakes: list[tuple[str, int]], dim: int) -> dict:
        return {
            "content_hash": manifest["content_hash"].to_numpy(dtype=str),
            "features": np.zeros((len(manifest), dim), np.float32),
            "synthetic_hash": np.array([h for h, _ in fakes]),
            "synthetic_index": np.array([i for _, i in fakes]),
            "synthetic_features": np.arange(len(fakes) * dim, dtype=np.float32).reshape(-1, dim),
        }

    tables = {
        # var0 is a val real and trf0 a train fake: neither may become a training fake
        "x": table([("trr0", 0), ("trr1", 0), ("var0", 0), ("trf0", 0), ("trr0", 1)], 2),
        "y": table([("trr1", 0), ("trr0", 0)], 3),  # another order, one missing
    }
    features, y = synthetic_arrays(manifest, tables, ["x", "y"])
    assert y.tolist() == [1, 1]
    np.testing.assert_array_equal(features["x"], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(features["y"], [[3, 4, 5], [0, 1, 2]])
    none, y_none = synthetic_arrays(manifest, {"x": {"features": np.zeros((3, 2))}}, ["x"])
    assert none["x"].shape == (0, 2) and len(y_none) == 0


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"per_real": 0}, "greater than or equal to 1"),
        ({"mask": {"kind": "square"}}, "ellipse"),
        ({"blend": {"edge_blur": [0.05, 0.01]}}, "low <= high"),
        ({"ratio": 0.5}, "Extra inputs"),
    ],
)
def test_bad_settings_are_refused(update, message):
    with pytest.raises(ValueError, match=message):
        SyntheticFakesConfig(**update)
