"""Fake images made from a rendered real photo, each leaving the traces detectors learn.

- ``self_blended``: Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images"
  (CVPR 2022): a colour-, sharpness- and geometry-jittered copy of the face is blended back
  through a deformed, blurred landmark-hull mask, leaving a blending boundary and a
  statistics mismatch inside the face.
- ``gan_upsampling``: down-scaling then up-sampling as GAN generators do (nearest,
  zero-insertion with an imperfect kernel, transposed convolution), which leaves periodic
  spectral peaks and checkerboard patterns.
- ``double_jpeg``: a second JPEG compression at another quality, sometimes on a shifted grid.

Strengths are randomised per image and kept moderate, so a detector must earn its AUC.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull

from deepfake_kedro.demo.scene import SUBSAMPLING, SUBSAMPLING_P, jpeg, to_uint8
from deepfake_kedro.synthesis import blend

DEMO_BLEND = blend.BlendConfig(
    hue_deg=6.0, saturation=(0.85, 1.15), brightness=(0.92, 1.08), channel_shift=0.02,
    blur_p=0.5, blur_sigma=(0.4, 1.2), sharpen=(0.3, 1.0), scale=(0.96, 1.04), shift=0.025,
    elastic=(0.01, 0.04), edge_smooth=0.02, edge_threshold=(0.3, 0.7), edge_blur=(0.01, 0.05),
    ratios=(0.25, 0.5, 0.75, 1.0, 1.0, 1.0),
)  # fmt: skip
"""The demo's self-blend ranges, spelled out: the demo's pixels for a seed must not move when
the training defaults of :class:`~deepfake_kedro.synthesis.blend.BlendConfig` do."""


def face_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Binary float mask of the convex hull of the face landmarks."""
    hull = landmarks[ConvexHull(landmarks).vertices]
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in hull.tolist()], fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def self_blend(rng: np.random.Generator, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Blend a jittered copy of `image` into itself through a soft, deformed face mask.

    The blending is :func:`deepfake_kedro.synthesis.blend.self_blend` (the one the training
    pipeline's synthetic fakes use) with the face's landmark hull as the region and the
    demo's ranges (:data:`DEMO_BLEND`).

    Args:
        rng: Random generator of the fake row.
        image: uint8 HxWx3 source photo.
        landmarks: (N, 2) face landmarks (x, y) of the source.

    Returns:
        The self-blended uint8 image.
    """
    mask = face_mask(landmarks, image.shape[0])
    return blend.self_blend(rng, image, mask, landmarks.mean(axis=0), DEMO_BLEND)


def gan_upsample(
    rng: np.random.Generator, image: np.ndarray, landmarks: np.ndarray
) -> np.ndarray:
    """Down-scale by 2 (sometimes 4) and up-sample back with generator-style layers.

    Args:
        rng: Random generator of the fake row.
        image: uint8 HxWx3 source photo.
        landmarks: (N, 2) face landmarks, used when only the face region is replaced.

    Returns:
        The re-synthesised uint8 image.
    """
    x = image.astype(np.float32) / 255.0
    size = x.shape[0]
    factor = 4 if rng.random() < 0.15 else 2
    padded_size = -(-size // factor) * factor
    x_pad = np.pad(x, ((0, padded_size - size), (0, padded_size - size), (0, 0)), mode="reflect")
    n_low = padded_size // factor
    low = x_pad.reshape(n_low, factor, n_low, factor, 3).mean((1, 3))
    for _ in range(factor // 2):  # one 2x layer per octave, each with its own method
        low = _upsample2(rng, low, rng.choice(["nearest", "zero_insertion", "transposed_conv"]))
    out = low[:size, :size]
    # Generators synthesise fine detail (here: part of the source's), and texture that is not
    # the camera's signal-dependent noise; without it the fakes would just be blurry.
    detail = x - ndimage.gaussian_filter(x, (0.5 * factor, 0.5 * factor, 0))
    out = out + rng.uniform(0.2, 0.7) * detail
    out = out + rng.normal(0, rng.uniform(0.0, 0.006), out.shape).astype(np.float32)
    if rng.random() < 0.35:  # only the face is generated; the rest is the original frame
        mask = ndimage.gaussian_filter(face_mask(landmarks, size), size * rng.uniform(0.01, 0.03))
        out = x + (out - x) * mask[..., None]
    return to_uint8(out)


def double_jpeg(rng: np.random.Generator, image: np.ndarray, first_quality: int) -> np.ndarray:
    """Compress an already compressed image again, usually at a lower quality.

    Half of the time the 8x8 grid is shifted by 1-7 px before the second compression
    (reflect-padded, then cropped back so the size is unchanged).

    Args:
        rng: Random generator of the fake row.
        image: uint8 HxWx3 stored (camera-compressed) photo.
        first_quality: Quality of the first compression; the second one differs from it.

    Returns:
        The twice-compressed uint8 image.
    """
    quality = int(rng.integers(60, 86)) if rng.random() < 0.8 else int(rng.integers(86, 98))
    if quality == first_quality:
        quality -= 3
    dy, dx = 0, 0
    if rng.random() < 0.5:
        dy, dx = (int(v) for v in rng.integers(0, 8, 2))
        if dy == dx == 0:
            dx = int(rng.integers(1, 8))
    padded = np.pad(image, ((dy, 0), (dx, 0), (0, 0)), mode="reflect")
    return jpeg(padded, quality, int(rng.choice(SUBSAMPLING, p=SUBSAMPLING_P)))[dy:, dx:]


def _upsample2(rng: np.random.Generator, x: np.ndarray, method: str) -> np.ndarray:
    """2x up-sampling as a generator layer does it; borders are handled by reflect-padding."""
    pad = 2
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    if method == "nearest":
        up = x.repeat(2, axis=0).repeat(2, axis=1)
        # The convolution after the resize smooths a little, but not across the pixel pairs.
        if rng.random() < 0.5:
            up = ndimage.gaussian_filter(up, (*[rng.uniform(0.3, 0.6)] * 2, 0))
    else:
        if method == "zero_insertion":  # linear interpolation kernel with a gain mismatch
            delta = rng.uniform(0.01, 0.06) * rng.choice([-1, 1])
            kernel = np.array([0.5 * (1 + delta), 1.0, 0.5 * (1 + delta)])
        else:  # stride-2 transposed convolution with a 4-tap "learned" kernel
            kernel = np.array([0.25, 0.75, 0.75, 0.25]) + rng.normal(0, 0.02, 4)
        kernel = 2 * kernel / kernel.sum()  # keep the mean brightness
        up = np.zeros((2 * x.shape[0], 2 * x.shape[1], 3), np.float32)
        up[::2, ::2] = x
        for axis in (0, 1):
            up = ndimage.correlate1d(up, kernel, axis=axis, mode="reflect")
    return up[2 * pad:-2 * pad, 2 * pad:-2 * pad]
