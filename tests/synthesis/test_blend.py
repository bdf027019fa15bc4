"""The one self-blending implementation (demo self_blended fakes and training's synthetic fakes)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_kedro.synthesis.blend import BlendConfig, self_blend


def _image(height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 226, (height, width, 3), dtype=np.uint8)


def _disc(height: int, width: int, cx: float, cy: float, radius: float) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return (np.hypot(cols - cx, rows - cy) <= radius).astype(np.float32)


def test_blend_is_deterministic_and_changes_only_the_region_and_its_edge():
    image = _image()
    mask = _disc(64, 64, 16, 16, 10)
    out = self_blend(np.random.default_rng(1), image, mask, np.array([16.0, 16.0]))
    again = self_blend(np.random.default_rng(1), image, mask, np.array([16.0, 16.0]))
    other = self_blend(np.random.default_rng(2), image, mask, np.array([16.0, 16.0]))
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)
    assert out.dtype == np.uint8 and out.shape == image.shape
    diff = np.abs(out.astype(int) - image.astype(int)).sum(axis=2)
    assert diff[mask > 0].mean() > 1  # the region is blended
    # edge blur, dilation and elastic displacement reach < 20 px past the disc at 64 px
    assert (diff[48:, :] == 0).all() and (diff[:, 48:] == 0).all()


def test_non_square_images_and_an_explicit_scale():
    image = _image(40, 72)
    mask = _disc(40, 72, 50, 20, 9)
    out = self_blend(np.random.default_rng(0), image, mask, np.array([50.0, 20.0]), scale=18)
    assert out.shape == image.shape
    diff = np.abs(out.astype(int) - image.astype(int)).sum(axis=2)
    assert diff[mask > 0].mean() > 1 and (diff[:, :25] == 0).all()


def test_a_region_thinner_than_the_erosion_still_blends():
    image = _image()
    mask = np.zeros((64, 64), np.float32)
    mask[30:32, 10:54] = 1  # 2 px thick: eroded away at threshold 0.7
    config = BlendConfig(edge_threshold=(0.7, 0.7), ratios=(1.0,))
    out = self_blend(np.random.default_rng(0), image, mask, np.array([32.0, 31.0]), config)
    assert np.abs(out.astype(int) - image.astype(int))[28:34].mean() > 0.5


def test_ratio_bounds_the_change():
    image = _image()
    mask = _disc(64, 64, 32, 32, 14)
    centre = np.array([32.0, 32.0])
    strong = self_blend(np.random.default_rng(5), image, mask, centre, BlendConfig(ratios=(1.0,)))
    weak = self_blend(np.random.default_rng(5), image, mask, centre, BlendConfig(ratios=(0.25,)))
    change = [np.abs(o.astype(int) - image.astype(int)).mean() for o in (strong, weak)]
    assert change[1] < 0.4 * change[0]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("saturation", (1.2, 0.8), "low <= high"),
        ("edge_threshold", (0.0, 0.5), "0 < low <= high < 1"),
        ("ratios", (0.5, 1.5), r"must lie in \(0, 1\]"),
        ("ratios", (), "at least 1"),
        ("scale", (0.0, 1.0), "positive"),
        ("blur_p", 2.0, "less than or equal to 1"),
        ("colour", 1.0, "Extra inputs"),
    ],
)
def test_bad_blend_settings_name_the_rule(field, value, message):
    with pytest.raises(ValueError, match=message):
        BlendConfig(**{field: value})
