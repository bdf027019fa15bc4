"""Random blending regions: anywhere in the image (not centred), or inside a face box."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_kedro.synthesis.masks import MaskConfig, random_region


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


def test_regions_are_deterministic_for_a_seed_and_vary_with_it():
    config = MaskConfig()
    first, centre, scale = random_region(np.random.default_rng(3), (48, 64), config)
    again, _, _ = random_region(np.random.default_rng(3), (48, 64), config)
    other, _, _ = random_region(np.random.default_rng(4), (48, 64), config)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (48, 64) and set(np.unique(first)) <= {0.0, 1.0}
    assert scale == 48 and 0 <= centre[0] <= 64 and 0 <= centre[1] <= 48


def test_regions_vary_in_position_and_are_not_centred_on_average():
    size, n = 64, 300
    masks = [
        random_region(np.random.default_rng(s), (size, size), MaskConfig())[0] for s in range(n)
    ]
    centroids = np.array([_centroid(m) for m in masks]) / size
    offsets = centroids - 0.5
    assert (offsets.std(axis=0) > 0.12).all()  # positions spread over the image
    assert np.hypot(*offsets.T).mean() > 0.15  # a face-centred mask would sit at ~0
    quadrant = (offsets[:, 0] > 0).astype(int) + 2 * (offsets[:, 1] > 0)
    assert (np.bincount(quadrant, minlength=4) / n > 0.15).all()
    coverage = np.mean(masks, axis=0)
    border = np.concatenate([coverage[:12].ravel(), coverage[-12:].ravel()])
    assert border.mean() > 0.25 * coverage[24:40, 24:40].mean()  # borders get blends too
    areas = np.array([m.mean() for m in masks])
    assert areas.min() > 0.01 and areas.max() <= 0.4


@pytest.mark.parametrize("kind", ["ellipse", "convex"])
def test_each_kind_draws_a_region_of_the_requested_area(kind):
    config = MaskConfig(kind=kind, box_area=(0.2, 0.2))
    box = (0.0, 0.0, 1.0, 1.0)  # a box the size of the frame: no clipping, the area asked
    areas = [random_region(np.random.default_rng(s), (80, 80), config, box)[0].mean()
             for s in range(20)]  # fmt: skip
    assert np.allclose(areas, 0.2, atol=0.04)


def test_with_a_face_box_the_region_lies_inside_it():
    box = (0.3, 0.2, 0.7, 0.75)
    height, width = 64, 80
    for seed in range(50):
        mask, centre, scale = random_region(
            np.random.default_rng(seed), (height, width), MaskConfig(), box
        )
        rows, cols = np.nonzero(mask)
        assert rows.size and cols.min() >= 0.3 * width and cols.max() < 0.7 * width
        assert rows.min() >= 0.2 * height and rows.max() < 0.75 * height
        assert scale == pytest.approx(min(0.4 * width, 0.55 * height), abs=1)
        # box_area: most of the face (a region wider than the box is shrunk to fit)
        assert 0.1 < mask.sum() / (0.4 * width * 0.55 * height) <= 0.85


def test_a_box_too_small_for_a_region_is_refused():
    with pytest.raises(ValueError, match="too small for a synthetic fake.*fix the face_box"):
        random_region(np.random.default_rng(0), (64, 64), MaskConfig(), (0.5, 0.5, 0.55, 0.9))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("area", (0.5, 0.2), "0 < low <= high <= 0.8"),
        ("area", (0.1, 0.95), "0 < low <= high <= 0.8"),
        ("box_area", (0.0, 0.5), "0 < low <= high <= 0.8"),
        ("aspect", (0.0, 1.0), "0 < low <= high"),
        ("vertices", (2, 5), "3 <= low"),
        ("kind", "star", "ellipse"),
    ],
)
def test_bad_mask_settings_name_the_rule(field, value, message):
    with pytest.raises(ValueError, match=message):
        MaskConfig(**{field: value})
