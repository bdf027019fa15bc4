"""Spectral features respond to the traces they target and are robust to precision and flat input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from backbone_helpers import batch, jpeg, scene

from deepfake_kedro.models import build_extractor
from deepfake_kedro.models.spectral import FEATURE_DIM, feature_slices, spectral_features

GROUPS = feature_slices()


def _group(images: torch.Tensor, name: str) -> np.ndarray:
    return spectral_features(images)[:, GROUPS[name]].numpy()


def _upsample_nearest(low: np.ndarray) -> np.ndarray:
    return low.repeat(2, axis=0).repeat(2, axis=1)


def _upsample_zero_insertion(low: np.ndarray) -> np.ndarray:
    """Zero insertion then a short (imperfect) interpolation kernel, as a generator layer."""
    h, w, c = low.shape
    up = np.zeros((2 * h, 2 * w, c), np.float32)
    up[::2, ::2] = low
    kernel = np.array([0.5, 1.0, 0.5], np.float32) * 0.9  # gain 1.8, not the ideal 2
    for axis in (0, 1):
        up = sum(k * np.roll(up, s, axis=axis) for k, s in zip(kernel, (-1, 0, 1), strict=True))
    return np.clip(up, 0, 255).astype(np.uint8)


def test_dimension_and_groups() -> None:
    features = spectral_features(batch(scene(64, 0), scene(64, 1)))
    assert features.shape == (2, FEATURE_DIM) and features.dtype == torch.float32
    assert max(s.stop for s in GROUPS.values()) == FEATURE_DIM
    assert 150 <= FEATURE_DIM <= 600  # moderate: the fusion head projects each branch


@pytest.mark.parametrize("upsample", [_upsample_nearest, _upsample_zero_insertion])
def test_upsampling_raises_the_periodic_peaks(upsample) -> None:
    originals = [scene(128, seed) for seed in range(3)]
    upsampled = [upsample(img[::2, ::2]) for img in originals]
    peaks = _group(batch(*originals, *upsampled), "periodic_peaks")
    strongest = peaks.max(axis=1)
    assert strongest[3:].min() > strongest[:3].max() + 1.0  # e-fold above every original


def test_stronger_jpeg_is_blockier() -> None:
    sources = [scene(64, seed) for seed in range(3)]
    images = [jpeg(img, 95) for img in sources] + [jpeg(img, 50) for img in sources]
    blockiness = _group(batch(*images), "blockiness")
    strongest_column_phase = blockiness[:, 0]  # sorted: the most blocky of the 8 column phases
    assert strongest_column_phase[3:].min() > strongest_column_phase[:3].max()


def test_jpeg_quantisation_shows_in_dct_periodicity() -> None:
    source = scene(128, 2)
    periodicity = _group(batch(jpeg(source, 50), source), "dct_periodicity")
    assert periodicity[0].max() > 0.8 > periodicity[1].max()


def test_flat_and_extreme_images_are_finite() -> None:
    flat = np.full((64, 64, 3), 128, np.uint8)
    black = np.zeros((64, 64, 3), np.uint8)
    white = np.full((64, 64, 3), 255, np.uint8)
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
    features = spectral_features(batch(flat, black, white, checker))
    assert torch.isfinite(features).all()
    torch.testing.assert_close(features[0], features[1])  # no content, no traces


def test_unaffected_by_autocast_and_channels_last() -> None:
    images = batch(scene(64, 0), scene(64, 1))
    extractor = build_extractor({"kind": "spectral", "image_size": 64})
    reference = extractor(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = extractor(images.contiguous(memory_format=torch.channels_last))
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, reference, rtol=1e-5, atol=1e-5)


def test_each_image_is_independent_of_its_batch() -> None:
    images = batch(scene(64, 0), scene(64, 1), scene(64, 2))
    together = spectral_features(images)
    alone = torch.cat([spectral_features(images[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


def test_float_input_in_0_255_equals_uint8() -> None:
    images = batch(scene(64, 0))
    torch.testing.assert_close(spectral_features(images.float()), spectral_features(images))


def test_too_small_images_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        spectral_features(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def test_nearest_upsampling_shows_in_the_pixel_phase_profile() -> None:
    originals = [scene(128, seed) for seed in range(3)]
    upsampled = [_upsample_nearest(img[::2, ::2]) for img in originals]
    cols = GROUPS["resampling"].start  # first: sorted log shares of the 2 column phases
    spread = lambda images: (  # noqa: E731
        spectral_features(batch(*images))[:, cols + 1] - spectral_features(batch(*images))[:, cols]
    )
    assert (spread(upsampled) > spread(originals) + 0.5).all()
