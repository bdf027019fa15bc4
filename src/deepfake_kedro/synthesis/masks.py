"""Random blending regions that need no landmarks: ellipses and convex polygons.

A region is centred uniformly at random in the image (the frame clips it), or placed inside a
face box when the manifest has one (``face_box``: relative ``x0,y0,x1,y1``), so a detector
trained on self-blends made with it learns blending traces wherever they are, not where one
data set puts its faces.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, field_validator
from scipy.spatial import ConvexHull

from deepfake_kedro.ingestion.face_box import FaceBox, box_pixels
from deepfake_kedro.synthesis.blend import Range

MIN_REGION_PX = 8
"""A face box (or image) smaller than this on a side holds no region worth blending."""


class MaskConfig(BaseModel):
    """The random region a synthetic fake is blended through.

    Attributes:
        kind: ``ellipse``, ``convex`` (the hull of random points) or ``mixed`` (either, at
            equal odds).
        area: Region area as a fraction of the image (rows without a face box).
        box_area: Region area as a fraction of the face box (rows with one): most of the
            face, as a face swap blends it.
        aspect: Ratio of the region's axes (width / height before rotation).
        vertices: Number of random points whose hull a convex region is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ellipse", "convex", "mixed"] = "mixed"
    area: Range = (0.05, 0.35)
    box_area: Range = (0.3, 0.8)
    aspect: Range = (0.6, 1.6)
    vertices: tuple[int, int] = (5, 10)

    @field_validator("area", "box_area")
    @classmethod
    def _area(cls, value: Range) -> Range:
        if not 0 < value[0] <= value[1] <= 0.8:
            raise ValueError(
                f"area {list(value)} must be [low, high] with 0 < low <= high <= 0.8 (a fraction "
                "of the image or face box; a region must leave some of it outside)"
            )
        return value

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, value: Range) -> Range:
        if not 0 < value[0] <= value[1]:
            raise ValueError(f"aspect {list(value)} must be [low, high] with 0 < low <= high")
        return value

    @field_validator("vertices")
    @classmethod
    def _vertices(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 3 <= value[0] <= value[1] <= 64:
            raise ValueError(
                f"vertices {list(value)} must be [low, high] with 3 <= low <= high <= 64"
            )
        return value


def random_region(
    rng: np.random.Generator,
    shape: tuple[int, int],
    config: MaskConfig,
    face_box: FaceBox | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random region inside the image, or inside ``face_box``.

    Args:
        rng: Random generator.
        shape: ``(height, width)`` of the image.
        config: Region kind, area and shape.
        face_box: Relative box the region must lie in (None: the whole image).

    Returns:
        The binary float32 HxW mask, its centre ``(x, y)`` in pixels and the scale in pixels
        (the shorter side of the box the region lies in).

    Raises:
        ValueError: if the box (or image) is smaller than :data:`MIN_REGION_PX` on a side.
    """
    left, top, right, bottom = box_pixels(face_box, shape)
    box_w, box_h = right - left, bottom - top
    if min(box_w, box_h) < MIN_REGION_PX:
        where = f"face_box {face_box}" if face_box is not None else "the image"
        raise ValueError(
            f"{where} is {box_w}x{box_h} px on a {shape[1]}x{shape[0]} image: too small for a "
            f"synthetic fake (at least {MIN_REGION_PX} px a side); fix the face_box or leave "
            "it empty"
        )
    kind = config.kind if config.kind != "mixed" else str(rng.choice(["ellipse", "convex"]))
    area = rng.uniform(*(config.area if face_box is None else config.box_area)) * box_w * box_h
    aspect = rng.uniform(*config.aspect)
    angle = rng.uniform(0, np.pi)
    # Semi-axes of an ellipse of that area and aspect; a convex region is drawn inside one
    # and rescaled to the area.
    semi_y = math.sqrt(area / (np.pi * aspect))
    semi_x = semi_y * aspect
    if kind == "ellipse":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        points = np.stack([semi_x * np.cos(t), semi_y * np.sin(t)], axis=1)
    else:
        n = int(rng.integers(config.vertices[0], config.vertices[1] + 1))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(0.5, 1.0, n)
        points = np.stack([semi_x * radius * np.cos(t), semi_y * radius * np.sin(t)], axis=1)
        points = _hull(points)
        points -= points.mean(axis=0)  # the centre inside the region, even for clustered angles
        points *= math.sqrt(area / max(_polygon_area(points), 1e-9))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = points @ rotation.T
    if face_box is None:
        # Anywhere: the frame may clip the region (up to about half of it each way), so
        # blends reach the borders, not only the middle (no face-centred prior).
        quarter = (points.max(axis=0) - points.min(axis=0)) / 4
        centre = np.array(
            [
                rng.uniform(
                    min(quarter[0], shape[1] / 2), max(shape[1] - quarter[0], shape[1] / 2)
                ),
                rng.uniform(
                    min(quarter[1], shape[0] / 2), max(shape[0] - quarter[1], shape[0] / 2)
                ),
            ]
        )
    else:
        # Inside the face: shrink a region wider than the box, then place it where it fits.
        extent = points.max(axis=0) - points.min(axis=0)
        points *= min(1.0, (box_w - 2) / max(extent[0], 1e-9), (box_h - 2) / max(extent[1], 1e-9))
        low, high = points.min(axis=0), points.max(axis=0)
        centre = np.array(
            [
                rng.uniform(left - low[0] + 1, max(right - high[0] - 1, left - low[0] + 1)),
                rng.uniform(top - low[1] + 1, max(bottom - high[1] - 1, top - low[1] + 1)),
            ]
        )
    polygon = points + centre
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in polygon.tolist()], fill=255)
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    return mask, centre, float(min(box_w, box_h))


def _hull(points: np.ndarray) -> np.ndarray:
    return points[ConvexHull(points).vertices]


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
