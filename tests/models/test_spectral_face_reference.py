"""The ``face_reference`` group sees a self-blended face against the neck of the same photo."""

from __future__ import annotations

import numpy as np
from backbone_helpers import batch
from scipy import ndimage

from deepfake_kedro.models.spectral import feature_slices, spectral_features

GROUP = feature_slices()["face_reference"]
COLOUR_SHIFT_L1 = 2  # |face - neck| log-chromaticity, summed over R/G and B/G
TEXTURE_BOX_MINUS_NECK = slice(23, 25)  # finest two texture scales, face box minus neck


def _portrait(seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with a skin-coloured face and neck; also the face's soft mask."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    background = rng.uniform(40, 200, 3) + 25 * ndimage.gaussian_filter(
        rng.standard_normal((size, size, 3)), (3, 3, 0)
    )
    face = np.hypot((x - 0.5) / 0.2, (y - 0.47) / 0.26) < 1
    neck = (np.abs(x - 0.5) < 0.09) & (y > 0.47)
    shading = 0.8 + 0.4 * (1 - y)[..., None]  # brightness varies, chromaticity does not
    skin = np.array([190.0, 140.0, 110.0]) * shading
    image = np.where((face | neck)[..., None], skin, background)
    image = image * (1 + 0.05 * rng.standard_normal((size, size, 1)))  # skin texture, noise
    mask = ndimage.gaussian_filter(face.astype(float), 3)[..., None]
    return np.clip(image, 0, 255), mask


def _features(*images: np.ndarray) -> np.ndarray:
    return spectral_features(batch(*(np.rint(i).astype(np.uint8) for i in images)))[:, GROUP].numpy()


def test_a_colour_jittered_face_stops_matching_its_neck() -> None:
    reals, fakes = [], []
    for seed in range(3):
        image, mask = _portrait(seed)
        jittered = image * np.array([1.06, 1.0, 0.93])  # the face's hue shifts, not the neck's
        reals.append(image)
        fakes.append(image + (jittered - image) * mask)
    shift = _features(*reals, *fakes)[:, COLOUR_SHIFT_L1]
    assert shift[3:].min() > shift[:3].max() + 0.05


def test_a_blurred_face_loses_texture_against_its_neck() -> None:
    reals, fakes = [], []
    for seed in range(3):
        image, mask = _portrait(seed)
        reals.append(image)
        fakes.append(image + (ndimage.gaussian_filter(image, (1.0, 1.0, 0)) - image) * mask)
    texture = _features(*reals, *fakes)[:, TEXTURE_BOX_MINUS_NECK]
    assert (texture[3:] < texture[:3] - 0.5).all()


def test_deterministic_and_finite_without_skin() -> None:
    image, _ = _portrait(0)
    grey = np.full((128, 128, 3), 90.0)  # no neck found: contrasts fall back to 0
    first, second = _features(image, grey), _features(image, grey)
    np.testing.assert_array_equal(first, second)
    assert np.isfinite(first).all()
    np.testing.assert_allclose(first[1, :COLOUR_SHIFT_L1 + 1], 0.0, atol=1e-6)
