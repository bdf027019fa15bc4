"""A second synthetic real/fake generator, for the benchmarks only: real photographs, other fakes.

The demo generator (``deepfake_kedro.demo``) draws procedural faces and fakes them three
ways; a detector that learned only its artefacts would score well in-domain and badly
elsewhere. This one starts from real photographs that ship with scikit-image
(``skimage.data``: public-domain or CC0 pictures, no download) and fakes them with four
other manipulation families, each on a random region placed anywhere in the image:

- ``copy_move``: a region of the image copied to another place of the same image (half of
  the time slightly rescaled), with a soft edge;
- ``local_warp``: a local geometric warp (bulge, pinch or swirl, as a liquify tool does),
  resampled with cubic interpolation;
- ``resynthesis``: the region denoised (total variation) and re-sharpened (unsharp mask), as
  an inpainting or re-synthesis model leaves clean, over-sharp texture;
- ``jpeg_region``: the region compressed at another, lower JPEG quality (sometimes on a
  shifted 8x8 grid) and pasted back.

Reals are random crops of the photos (side log-uniform between the image size and the
photo's shorter side, random position, mirrored half of the time), down-scaled to the image
size; every real and every fake then goes through one last JPEG stage at a web quality, and
is stored as PNG, so a fake differs from its real by the manipulation only. A fake is made
from the crop of its real. ``source_id`` is the photo (the two motorcycle views are one
source), so a grouped split keeps every crop of a photo in one split.

The manifest has the demo's columns (:data:`deepfake_kedro.demo.generator.MANIFEST_COLUMNS`):
``group_a`` is the photo's kind (``colour`` or ``grey``), ``group_b`` the crop (``wide``:
more than half of the photo's shorter side, else ``close``). Every row carries its own seed:
the same config gives the same manifest and pixels, and any row renders on its own.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import ndimage

from deepfake_kedro.demo.generator import MANIFEST_COLUMNS
from deepfake_kedro.demo.scene import SUBSAMPLING, SUBSAMPLING_P, jpeg
from deepfake_kedro.values import iso

logger = logging.getLogger(__name__)

Family = Literal["copy_move", "local_warp", "resynthesis", "jpeg_region"]
FAMILIES: tuple[Family, ...] = ("copy_move", "local_warp", "resynthesis", "jpeg_region")
PHOTOS: dict[str, str] = {
    # photo name -> source id (the two motorcycle pictures are one scene)
    "astronaut": "astronaut",
    "brick": "brick",
    "camera": "camera",
    "cell": "cell",
    "chelsea": "chelsea",
    "clock": "clock",
    "coffee": "coffee",
    "coins": "coins",
    "grass": "grass",
    "gravel": "gravel",
    "hubble_deep_field": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry",
    "moon": "moon",
    "motorcycle_left": "motorcycle",
    "motorcycle_right": "motorcycle",
    "retina": "retina",
    "rocket": "rocket",
}
WEB_QUALITY = (75, 95)
"""Quality of the last JPEG stage every image goes through (a photo as shared online)."""
_REAL, _FAKE = 0, 1  # seed-sequence tags, so real and fake seeds never collide


class SecondSourceConfig(BaseModel):
    """Settings of the second generator's dataset; a bad value fails with the field's name.

    Attributes:
        n_images: Total number of images, reals plus fakes.
        image_size: Side of the square images in pixels (at most the smallest photo's
            shorter side, 300).
        seed: Seed of the whole dataset.
        fake_fraction: Share of fakes; reals are round(n_images * (1 - fake_fraction)).
        families: Manipulation families, used round-robin.
        region_area: Area of the manipulated region as a fraction of the image.
        start_date: First day of ``captured_at``.
        span_days: ``captured_at`` lies in [start_date, start_date + span_days).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_images: int = Field(600, ge=8)
    image_size: int = Field(256, ge=64, le=300)
    seed: int = Field(0, ge=0)
    fake_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES), min_length=1)
    region_area: tuple[float, float] = (0.03, 0.15)
    start_date: date = date(2026, 3, 1)
    span_days: int = Field(90, ge=1)

    @field_validator("families")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"list each family once, got {value}")
        return value

    @field_validator("region_area")
    @classmethod
    def _area(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 0.3:
            raise ValueError(
                f"region_area {list(value)} must be [low, high] with 0 < low <= high <= 0.3 "
                "(a fraction of the image; copy-move needs room for the copy and its source)"
            )
        return value

    @model_validator(mode="after")
    def _every_kind_present(self) -> SecondSourceConfig:
        if self.n_real < 1 or self.n_fake < len(self.families):
            raise ValueError(
                f"n_images={self.n_images} with fake_fraction={self.fake_fraction} gives "
                f"{self.n_real} reals and {self.n_fake} fakes; need at least 1 real and one fake "
                f"per family ({len(self.families)}): change fake_fraction or n_images"
            )
        return self

    @property
    def n_real(self) -> int:
        """Number of real images."""
        return round(self.n_images * (1 - self.fake_fraction))

    @property
    def n_fake(self) -> int:
        """Number of fake images."""
        return self.n_images - self.n_real


class Rendered(NamedTuple):
    """One rendered row: the stored pixels and the manipulated region (zeros for a real)."""

    pixels: np.ndarray
    mask: np.ndarray


# -------------------------------------------------------------------------------- plan


def plan_manifest(config: SecondSourceConfig) -> pd.DataFrame:
    """List every image of the dataset without rendering any.

    Real ``i`` is a crop of photo ``i mod len(PHOTOS)``; fakes go round-robin over the
    reals (fake ``k`` is made from real ``k mod n_real``) and the ``n``-th fake of real
    ``i`` uses family ``(i + n) mod len(families)``, so counts stay balanced.

    Returns:
        The manifest, with the demo's columns.
    """
    photos = list(PHOTOS)
    rows: list[dict[str, Any]] = []
    for index in range(config.n_real):
        real = _plan_real(config, index, photos[index % len(photos)])
        rows.append(real)
        n_fakes = len(range(index, config.n_fake, config.n_real))
        rows += [_plan_fake(config, real, index, nth) for nth in range(n_fakes)]
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return manifest.astype({"seed": "int64"})


def _row_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def _timestamp(config: SecondSourceConfig, rng: np.random.Generator) -> str:
    start = datetime.combine(config.start_date, datetime.min.time(), tzinfo=UTC)
    return iso(start + timedelta(seconds=int(rng.integers(0, config.span_days * 86400))))


def _plan_real(config: SecondSourceConfig, index: int, photo: str) -> dict[str, Any]:
    seed = _row_seed(config.seed, _REAL, index)
    rng = np.random.default_rng([seed, 0])
    crop = _crop_box(np.random.default_rng([seed, 1]), _photo(photo).shape[:2], config.image_size)
    return {
        "image_path": f"images/{photo}/{index:05d}_real.png",
        "label": "real",
        "source_id": PHOTOS[photo],
        "manipulation": "none",
        "group_a": "grey" if _is_grey(photo) else "colour",
        "group_b": "wide" if crop.wide else "close",
        "captured_at": _timestamp(config, rng),
        "seed": seed,
    }


def _plan_fake(
    config: SecondSourceConfig, real: Mapping[str, Any], index: int, nth: int
) -> dict[str, Any]:
    seed = _row_seed(config.seed, _FAKE, index, nth)
    family = config.families[(index + nth) % len(config.families)]
    folder = str(real["image_path"]).rsplit("/", 1)[0]
    return {
        **real,
        "image_path": f"{folder}/{index:05d}_{family}_{nth}.png",
        "label": "fake",
        "manipulation": family,
        "captured_at": _timestamp(config, np.random.default_rng([seed, 0])),
        "seed": seed,
    }


# ------------------------------------------------------------------------------ render


def render(row: Mapping[str, Any], config: SecondSourceConfig) -> Rendered:
    """Render one manifest row (deterministic, independent of any other row).

    A fake re-renders the crop of its real from the real's seed, manipulates it and goes
    through the same last JPEG stage.

    Raises:
        ValueError: if the row's manipulation is not ``none`` or one of :data:`FAMILIES`.
    """
    manipulation = str(row["manipulation"])
    if manipulation != "none" and manipulation not in FAMILIES:
        raise ValueError(
            f"unknown manipulation {manipulation!r}; allowed: none, {', '.join(FAMILIES)}"
        )
    photo, index = _real_of(row)
    real_seed = _row_seed(config.seed, _REAL, index)
    crop = _crop(photo, real_seed, config.image_size)
    rng = np.random.default_rng([int(row["seed"]), 1])
    mask = np.zeros(crop.shape[:2], np.float32)
    if manipulation != "none":
        crop, mask = MANIPULATE[manipulation](rng, crop, config)
    quality = int(rng.integers(WEB_QUALITY[0], WEB_QUALITY[1] + 1))
    subsampling = int(rng.choice(SUBSAMPLING, p=SUBSAMPLING_P))
    return Rendered(jpeg(crop, quality, subsampling), mask)


def render_image(row: Mapping[str, Any], config: SecondSourceConfig) -> Image.Image:
    """The stored RGB image of one manifest row."""
    return Image.fromarray(render(row, config).pixels)


def write_second_source_dataset(out_dir: str | Path, config: SecondSourceConfig) -> pd.DataFrame:
    """Render every image as PNG under ``out_dir`` and write ``out_dir/manifest.csv`` last.

    Returns:
        The manifest that was written (image paths relative to ``out_dir``).
    """
    out = Path(out_dir)
    manifest = plan_manifest(config)
    logger.info(
        "Writing %d second-source images (%d real, %d fake, %d px) to %s",
        len(manifest),
        config.n_real,
        config.n_fake,
        config.image_size,
        out,
    )
    for folder in {(out / p).parent for p in manifest["image_path"]}:
        folder.mkdir(parents=True, exist_ok=True)
    for row in manifest.to_dict("records"):
        render_image(row, config).save(out / row["image_path"], format="PNG", compress_level=1)
    manifest.to_csv(out / "manifest.csv", index=False)
    return manifest


def _real_of(row: Mapping[str, Any]) -> tuple[str, int]:
    """The photo and real index of a row, from its image path (``images/<photo>/<i>_...``)."""
    _, photo, name = str(row["image_path"]).split("/")
    return photo, int(name.split("_", 1)[0])


# ------------------------------------------------------------------------------ photos


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A photo of ``skimage.data`` as uint8 HxWx3 (grey photos repeated over the channels)."""
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - dev extra
        raise ImportError(
            "the second benchmark generator needs scikit-image (its public-domain photos): "
            "install the dev extra, pip install -c constraints.txt -e '.[dev]'"
        ) from err
    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        image = left if name == "motorcycle_left" else right
    else:
        image = getattr(data, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
    image.setflags(write=False)
    return image


def _is_grey(name: str) -> bool:
    image = _photo(name)
    return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())


class _CropBox(NamedTuple):
    top: int
    left: int
    side: int
    flip: bool
    wide: bool


def _crop_box(rng: np.random.Generator, shape: tuple[int, int], size: int) -> _CropBox:
    short = min(shape)
    side = int(round(math.exp(rng.uniform(math.log(size), math.log(short)))))
    side = min(max(side, size), short)
    top = int(rng.integers(0, shape[0] - side + 1))
    left = int(rng.integers(0, shape[1] - side + 1))
    return _CropBox(top, left, side, bool(rng.random() < 0.5), side > 0.5 * short)


@functools.lru_cache(maxsize=8)
def _crop(photo: str, real_seed: int, size: int) -> np.ndarray:
    """The real's crop before its last JPEG stage: a down-scaled square of the photo."""
    image = _photo(photo)
    box = _crop_box(np.random.default_rng([real_seed, 1]), image.shape[:2], size)
    square = image[box.top : box.top + box.side, box.left : box.left + box.side]
    if box.flip:
        square = square[:, ::-1]
    resized = Image.fromarray(np.ascontiguousarray(square)).resize(
        (size, size), Image.Resampling.LANCZOS
    )
    crop = np.asarray(resized, dtype=np.uint8)
    crop.setflags(write=False)
    return crop


# ----------------------------------------------------------------------- manipulations


def _region(
    rng: np.random.Generator, size: int, area: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random ellipse anywhere in the image: binary mask, centre (row, col), mean radius."""
    radius = math.sqrt(rng.uniform(*area) * size * size / math.pi)
    aspect = rng.uniform(0.6, 1.6)
    ry, rx = radius / math.sqrt(aspect), radius * math.sqrt(aspect)
    angle = rng.uniform(0, math.pi)
    reach = max(ry, rx) + 2
    cy, cx = rng.uniform(reach, size - reach, 2) if reach < size / 2 else (size / 2, size / 2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
    mask = ((u / rx) ** 2 + (v / ry) ** 2 <= 1.0).astype(np.float32)
    return mask, np.array([cy, cx]), radius


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(mask, sigma) if sigma > 0 else mask


def _composite(base: np.ndarray, other: np.ndarray, soft: np.ndarray) -> np.ndarray:
    out = base.astype(np.float64) + (other.astype(np.float64) - base) * soft[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def copy_move(
    rng: np.random.Generator, image: np.ndarray, config: SecondSourceConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Copy a region of ``image`` to another place of the same image (soft edge)."""
    size = image.shape[0]
    mask, centre, radius = _region(rng, size, config.region_area)
    # The source lies elsewhere in the image, at least one region diameter away.
    for _ in range(100):
        source = rng.uniform(radius + 2, size - radius - 2, 2)
        if np.hypot(*(source - centre)) >= 2 * radius:
            break
    offset = source - centre  # copy[p] = image[p + offset]
    x = image.astype(np.float64)
    scale = rng.uniform(0.9, 1.1) if rng.random() < 0.5 else 1.0
    matrix = np.array([1 / scale, 1 / scale, 1.0])
    shift = np.append(centre + offset - (centre / scale), 0.0)
    copy = ndimage.affine_transform(x, matrix, shift, order=1, mode="reflect")
    soft = _soft(mask, rng.uniform(0.5, 2.5))
    return _composite(image, copy, soft), mask


def local_warp(
    rng: np.random.Generator, image: np.ndarray, config: SecondSourceConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Bulge, pinch or swirl a region (cubic resampling); the mask is where pixels moved."""
    size = image.shape[0]
    mask, (cy, cx), radius = _region(rng, size, config.region_area)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = y - cy, x - cx
    r = np.hypot(dy, dx)
    falloff = np.clip(1 - r / radius, 0, 1) ** 2  # 1 at the centre, 0 beyond the radius
    kind = rng.choice(["bulge", "pinch", "swirl"])
    if kind == "swirl":
        theta = rng.choice([-1, 1]) * rng.uniform(0.3, 0.9) * falloff
        src_y = cy + dy * np.cos(theta) - dx * np.sin(theta)
        src_x = cx + dy * np.sin(theta) + dx * np.cos(theta)
    else:
        strength = rng.uniform(0.15, 0.35) * (1 if kind == "pinch" else -1)
        factor = 1 + strength * falloff  # sample farther out (pinch) or nearer (bulge)
        src_y, src_x = cy + dy * factor, cx + dx * factor
    channels = [
        ndimage.map_coordinates(
            image[..., c].astype(np.float64), [src_y, src_x], order=3, mode="reflect"
        )
        for c in range(3)
    ]
    warped = np.stack(channels, axis=-1)
    moved = (np.hypot(src_y - y, src_x - x) > 0.25).astype(np.float32)
    return np.clip(np.rint(warped), 0, 255).astype(np.uint8), moved


def resynthesis(
    rng: np.random.Generator, image: np.ndarray, config: SecondSourceConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Denoise a region (total variation) and re-sharpen it (unsharp mask), soft edge."""
    from skimage.filters import unsharp_mask
    from skimage.restoration import denoise_tv_chambolle

    mask, _, _ = _region(rng, image.shape[0], config.region_area)
    x = image.astype(np.float64) / 255.0
    clean = denoise_tv_chambolle(x, weight=rng.uniform(0.03, 0.1), channel_axis=-1)
    sharp = unsharp_mask(
        clean, radius=rng.uniform(0.8, 2.0), amount=rng.uniform(0.5, 1.5), channel_axis=-1
    )
    soft = _soft(mask, rng.uniform(1.0, 4.0))
    return _composite(image, np.clip(sharp, 0, 1) * 255.0, soft), mask


def jpeg_region(
    rng: np.random.Generator, image: np.ndarray, config: SecondSourceConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Compress the image at a lower quality (half of the time on a shifted 8x8 grid) and
    paste the region back (edge blur 0-1.5 px)."""
    mask, _, _ = _region(rng, image.shape[0], config.region_area)
    quality = int(rng.integers(30, 71))
    dy, dx = (int(v) for v in rng.integers(0, 8, 2)) if rng.random() < 0.5 else (0, 0)
    padded = np.pad(image, ((dy, 0), (dx, 0), (0, 0)), mode="reflect")
    recompressed = jpeg(padded, quality, int(rng.choice(SUBSAMPLING, p=SUBSAMPLING_P)))[dy:, dx:]
    soft = _soft(mask, rng.uniform(0.0, 1.5))
    return _composite(image, recompressed, soft), mask


Manipulation = Callable[
    [np.random.Generator, np.ndarray, SecondSourceConfig], tuple[np.ndarray, np.ndarray]
]
"""``(rng, uint8 image, config) -> (manipulated uint8 image, binary mask of the region)``."""

MANIPULATE: dict[str, Manipulation] = {
    "copy_move": copy_move,
    "local_warp": local_warp,
    "resynthesis": resynthesis,
    "jpeg_region": jpeg_region,
}
