"""Training-time augmentation: deterministic for a seed, sampled from ranges, cached views."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deepfake_kedro.training.augmentation import (
    AugmentationConfig,
    augment,
    augmented_key,
    augmented_rows,
    view_seed,
)


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), mode="RGB")


def test_augmentation_is_deterministic_for_a_seed_and_varies_across_views():
    config = AugmentationConfig(**{name: {"p": 1.0, "range": r} for name, r in {
        "jpeg": (40, 90), "blur": (0.3, 1.0), "noise": (1, 4), "rescale": (0.6, 0.9),
        "contrast": (0.7, 1.3), "saturation": (0.5, 1.5)}.items()})
    image = _image()
    first = np.asarray(augment(image, config, view_seed(config, "a.jpg", 0)))
    again = np.asarray(augment(image, config, view_seed(config, "a.jpg", 0)))
    other = np.asarray(augment(image, config, view_seed(config, "a.jpg", 1)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, np.asarray(image))
    assert first.shape == np.asarray(image).shape


def test_probability_zero_leaves_the_image_alone():
    off = {"p": 0.0, "range": (0.5, 0.9)}
    config = AugmentationConfig(
        jpeg={"p": 0.0, "range": (50, 90)}, blur=off, noise={"p": 0.0, "range": (1, 2)},
        rescale=off, contrast=off, saturation=off,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(augment(_image(), config, 7)), np.asarray(_image()))


def test_keys_change_with_the_spec_and_the_view():
    config = AugmentationConfig()
    key = augmented_key("ab" * 32, config, 0)
    assert key.startswith("ab" * 32) and key != augmented_key("ab" * 32, config, 1)
    assert key != augmented_key("ab" * 32, config.model_copy(update={"seed": 1}), 0)
    # the number of views does not change an existing view's key
    assert key == augmented_key("ab" * 32, config.model_copy(update={"views": 5}), 0)


def test_rows_repeat_per_view():
    import pandas as pd

    rows = pd.DataFrame({"image_path": ["a", "b"], "content_hash": ["0" * 64, "1" * 64]})
    views = augmented_rows(rows, AugmentationConfig(views=3))
    assert len(views) == 6 and set(views["view_index"]) == {0, 1, 2}
    assert views["image_hash"].tolist()[:2] == ["0" * 64, "1" * 64]
    assert augmented_rows(rows, AugmentationConfig(views=0)).empty


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("jpeg", {"p": 0.5, "range": (90, 40)}, "low <= high"),
        ("noise", {"p": 1.5, "range": (1, 2)}, "less than or equal to 1"),
        ("rescale", {"p": 0.5, "range": (0.0, 0.9)}, "out of range"),
    ],
)
def test_bad_operations_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        AugmentationConfig(**{field: value})


def test_augmented_arrays_join_views_of_train_images_across_branches():
    import pandas as pd

    from deepfake_kedro.training.inputs import augmented_arrays

    manifest = pd.DataFrame(
        {"content_hash": ["a", "b", "c"], "split": ["train", "train", "val"],
         "label": ["real", "fake", "fake"]}
    )  # fmt: skip

    def table(views: list[tuple[str, int]], dim: int) -> dict:
        return {
            "content_hash": np.array(["a", "b", "c"]),
            "features": np.zeros((3, dim), np.float32),
            "augmented_hash": np.array([h for h, _ in views]),
            "augmented_view": np.array([v for _, v in views]),
            "augmented_features": np.arange(len(views) * dim, dtype=np.float32).reshape(-1, dim),
        }

    tables = {
        "x": table([("a", 0), ("b", 0), ("a", 1), ("c", 0)], 2),  # c is not a train image
        "y": table([("b", 0), ("a", 0)], 3),  # views in another order, one missing
    }
    features, y = augmented_arrays(manifest, tables, ["x", "y"])
    assert y.tolist() == [0, 1]  # a/0 (real), b/0 (fake)
    np.testing.assert_array_equal(features["x"], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(features["y"], [[3, 4, 5], [0, 1, 2]])
    none, y_none = augmented_arrays(manifest, {"x": {"features": np.zeros((3, 2))}}, ["x"])
    assert none["x"].shape == (0, 2) and len(y_none) == 0
