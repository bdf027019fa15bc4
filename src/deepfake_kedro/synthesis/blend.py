"""Self-blending (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022).

A copy of the image is colour-, sharpness- and geometry-jittered and blended back into the
image through a soft, elastically deformed mask: the result carries a blending boundary and a
statistics mismatch inside the mask, the traces face-swap blending leaves, with no second
identity. This is the one implementation: the demo generator calls it with a landmark-hull
face mask (:func:`deepfake_kedro.demo.manipulations.self_blend`), training with a random
region (:mod:`deepfake_kedro.training.synthetic`). :class:`BlendConfig`'s defaults are the
demo's own ranges, so the demo's pixels for a seed do not depend on this module's callers.

Lengths (mask edge, elastic displacement, shift) are fractions of a ``scale`` in pixels: the
image's shorter side by default, the face box's when the region is a face box.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import ndimage

Range = tuple[float, float]


def _ordered(value: Range, low: float = 0.0, high: float = np.inf) -> Range:
    if not low <= value[0] <= value[1] <= high:
        raise ValueError(
            f"range {list(value)} must be [low, high] with {low} <= low <= high <= {high}"
        )
    return value


class BlendConfig(BaseModel):
    """The ranges a self-blend samples from (defaults: the demo generator's).

    Attributes:
        hue_deg: Largest hue rotation of the source copy, degrees (sampled in +-hue_deg).
        saturation: Chroma scaling of the copy.
        brightness: Brightness scaling of the copy.
        channel_shift: Largest per-channel offset of the copy (0-1 units).
        blur_p: Probability that the copy is blurred rather than sharpened.
        blur_sigma: Gaussian sigma of that blur (px).
        sharpen: Unsharp-mask amount otherwise.
        scale: Scaling of the copy about the mask centre.
        shift: Largest translation of the copy, fraction of the scale.
        elastic: Largest elastic displacement of the mask, fraction of the scale ([0, 0]: off).
        edge_smooth: Sigma of the smoothing before the erode/dilate threshold, fraction of
            the scale.
        edge_threshold: Threshold of that smoothed mask (above 0.5 erodes, below dilates).
        edge_blur: Sigma of the soft mask edge, fraction of the scale.
        ratios: Blend ratios (the mask's peak), one drawn uniformly.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hue_deg: float = Field(6.0, ge=0, le=180)
    saturation: Range = (0.85, 1.15)
    brightness: Range = (0.92, 1.08)
    channel_shift: float = Field(0.02, ge=0, le=1)
    blur_p: float = Field(0.5, ge=0, le=1)
    blur_sigma: Range = (0.4, 1.2)
    sharpen: Range = (0.3, 1.0)
    scale: Range = (0.96, 1.04)
    shift: float = Field(0.025, ge=0, le=0.5)
    elastic: Range = (0.01, 0.04)
    edge_smooth: float = Field(0.02, ge=0, le=0.5)
    edge_threshold: Range = (0.3, 0.7)
    edge_blur: Range = (0.01, 0.05)
    ratios: tuple[float, ...] = Field((0.25, 0.5, 0.75, 1.0, 1.0, 1.0), min_length=1)

    @field_validator("saturation", "brightness", "blur_sigma", "sharpen", "scale", "elastic",
                     "edge_blur")  # fmt: skip
    @classmethod
    def _range(cls, value: Range) -> Range:
        return _ordered(value)

    @field_validator("edge_threshold")
    @classmethod
    def _threshold(cls, value: Range) -> Range:
        if not 0 < value[0] <= value[1] < 1:
            raise ValueError(f"range {list(value)} must be [low, high] with 0 < low <= high < 1")
        return value

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0 < r <= 1 for r in value):
            raise ValueError(f"blend ratios {list(value)} must lie in (0, 1]")
        return value

    @model_validator(mode="after")
    def _positive_scale(self) -> BlendConfig:
        if self.scale[0] <= 0:
            raise ValueError(f"scale {list(self.scale)} must be positive")
        return self


def self_blend(
    rng: np.random.Generator,
    image: np.ndarray,
    mask: np.ndarray,
    centre: np.ndarray,
    config: BlendConfig | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """Blend a jittered copy of ``image`` into itself through a soft, deformed ``mask``.

    Args:
        rng: Random generator (consumed in a fixed order: colour, sharpness, geometry,
            elastic field, edge threshold, edge blur, ratio).
        image: uint8 HxWx3 source.
        mask: float HxW region in [0, 1] (a face hull, a random ellipse...).
        centre: (x, y) the copy is scaled about, in pixels.
        config: The ranges (default: the demo's).
        scale: Pixels the relative lengths refer to (default: the shorter image side).

    Returns:
        The self-blended uint8 image.
    """
    config = config or BlendConfig()
    x = image.astype(np.float32) / 255.0
    size = min(x.shape[:2]) if scale is None else scale
    jittered = _colour_jitter(rng, x, config)
    jittered = _sharpness_jitter(rng, jittered, config)
    jittered = _shift_scale(rng, jittered, centre, size, config)
    soft = blend_mask(rng, mask, size, config)
    return _to_uint8(x + (jittered - x) * soft[..., None])


def blend_mask(
    rng: np.random.Generator, mask: np.ndarray, size: float, config: BlendConfig
) -> np.ndarray:
    """The soft blending mask: elastic deformation, random erosion/dilation, a soft edge of
    random width, scaled to a random blend ratio."""
    mask = _elastic(rng, mask, size, config.elastic)
    hard = ndimage.gaussian_filter(mask, size * config.edge_smooth) > rng.uniform(
        *config.edge_threshold
    )
    if not hard.any():  # a region thinner than the erosion: keep it undilated, not empty
        hard = mask > 0.5
    soft = ndimage.gaussian_filter(hard.astype(np.float32), size * rng.uniform(*config.edge_blur))
    return soft / max(float(soft.max()), 1e-6) * rng.choice(list(config.ratios))


def _colour_jitter(rng: np.random.Generator, x: np.ndarray, config: BlendConfig) -> np.ndarray:
    """Small hue rotation, saturation and brightness scaling, and per-channel shift."""
    grey = x.mean(axis=2, keepdims=True)
    chroma = x - grey
    # Rotating the chroma vector about the grey axis (1,1,1)/sqrt(3) shifts the hue.
    theta = np.deg2rad(rng.uniform(-config.hue_deg, config.hue_deg))
    cross = np.stack(
        [
            chroma[..., 2] - chroma[..., 1],
            chroma[..., 0] - chroma[..., 2],
            chroma[..., 1] - chroma[..., 0],
        ],
        axis=-1,
    ) / np.sqrt(3)
    chroma = (chroma * np.cos(theta) + cross * np.sin(theta)) * rng.uniform(*config.saturation)
    shift = rng.uniform(-config.channel_shift, config.channel_shift, 3).astype(np.float32)
    return grey * rng.uniform(*config.brightness) + chroma + shift


def _sharpness_jitter(rng: np.random.Generator, x: np.ndarray, config: BlendConfig) -> np.ndarray:
    if rng.random() < config.blur_p:
        return ndimage.gaussian_filter(x, (*[rng.uniform(*config.blur_sigma)] * 2, 0))
    blurred = ndimage.gaussian_filter(x, (1.0, 1.0, 0))
    return x + rng.uniform(*config.sharpen) * (x - blurred)


def _shift_scale(
    rng: np.random.Generator, x: np.ndarray, centre: np.ndarray, size: float, config: BlendConfig
) -> np.ndarray:
    """Scale about ``centre`` and translate by up to ``config.shift`` of ``size``."""
    scale = rng.uniform(*config.scale)
    centre = np.append(np.asarray(centre)[::-1], 0.0)  # (row, col, channel)
    shift = np.append(rng.uniform(-config.shift, config.shift, 2) * size, 0.0)
    matrix = np.array([1 / scale, 1 / scale, 1.0])
    offset = centre - centre * matrix - shift
    return ndimage.affine_transform(x, matrix, offset, order=1, mode="reflect")


def _elastic(
    rng: np.random.Generator, mask: np.ndarray, size: float, amplitude: Range
) -> np.ndarray:
    """Deform a mask with a smooth random displacement field (up to ``amplitude`` of ``size``)."""
    height, width = mask.shape
    # Smooth field: random at a coarse scale (about 16 px cells), then zoomed up.
    coarse = (max(4, height // 16), max(4, width // 16))
    fields = rng.standard_normal((2, *coarse))
    zoom = (1, height / coarse[0], width / coarse[1])
    fields = ndimage.zoom(fields, zoom, order=1)[:, :height, :width]
    fields *= rng.uniform(*amplitude) * size / (np.abs(fields).max() + 1e-6)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    coords = [rows + fields[0], cols + fields[1]]
    return ndimage.map_coordinates(mask, coords, order=1, mode="nearest")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
