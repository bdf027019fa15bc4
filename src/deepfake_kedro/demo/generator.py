"""Deterministic synthetic deepfake dataset: plan a manifest, render any row, write it all.

Reals are procedural camera photos of faces (see :mod:`deepfake_kedro.demo.scene`); each fake
is made from one real (see :mod:`deepfake_kedro.demo.manipulations`). Every row carries its
own seed, so any subset of rows renders independently, in any order, on any worker, and the
same config always gives the same manifest and the same pixels. All images are PNG of the
same size, so neither the container nor the shape says which ones are fake.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tqdm import tqdm

from deepfake_kedro.demo.manipulations import double_jpeg, gan_upsample, self_blend
from deepfake_kedro.demo.scene import Photo, camera_jpeg, render_photo
from deepfake_kedro.logging_setup import show_progress_bar
from deepfake_kedro.values import iso

logger = logging.getLogger(__name__)

Manipulation = Literal["self_blended", "gan_upsampling", "double_jpeg"]
MANIPULATIONS: tuple[Manipulation, ...] = ("self_blended", "gan_upsampling", "double_jpeg")
MANIFEST_COLUMNS = (
    "image_path", "label", "source_id", "manipulation", "group_a", "group_b", "captured_at", "seed",
)
# Demographic-style attributes with unequal frequencies; scene.py gives each a visual effect
# (group_a: skin tone; group_b: illumination level and colour, sensor noise).
GROUP_A = {"a0": 0.5, "a1": 0.3, "a2": 0.2}
GROUP_B = {"b0": 0.6, "b1": 0.4}
_REAL, _FAKE = 0, 1  # seed-sequence tags, so real and fake seeds never collide
_MAX_FAKE_DELAY_S = 6 * 3600


class DemoConfig(BaseModel):
    """Settings of the synthetic dataset; a bad value fails with the field's name.

    Attributes:
        n_images: Total number of images, reals plus fakes.
        image_size: Side of the square images in pixels.
        seed: Seed of the whole dataset.
        fake_fraction: Share of fakes; reals are round(n_images * (1 - fake_fraction)).
        manipulations: Fake methods, used round-robin.
        start_date: First day of `captured_at`.
        span_days: `captured_at` lies in [start_date, start_date + span_days).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_images: int = Field(1000, ge=8)
    image_size: int = Field(256, ge=32, le=4096)
    seed: int = Field(0, ge=0)
    fake_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    manipulations: list[Manipulation] = Field(
        default_factory=lambda: list(MANIPULATIONS), min_length=1
    )
    start_date: date = date(2026, 1, 1)
    span_days: int = Field(180, ge=1)

    @field_validator("manipulations")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"list each manipulation once, got {value}")
        return value

    @model_validator(mode="after")
    def _every_kind_present(self) -> DemoConfig:
        if self.n_real < 1 or self.n_fake < len(self.manipulations):
            raise ValueError(
                f"n_images={self.n_images} with fake_fraction={self.fake_fraction} gives "
                f"{self.n_real} reals and {self.n_fake} fakes; need at least 1 real and one fake "
                f"per manipulation ({len(self.manipulations)}): change fake_fraction or n_images"
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


def plan_manifest(config: DemoConfig) -> pd.DataFrame:
    """List every image of the dataset without rendering any.

    Rows are ordered by source: each real is followed by the fakes made from it, so rendering
    in manifest order renders each source once. Fakes go round-robin over the reals (fake k
    is made from real k mod n_real); the n-th fake of real i uses manipulation
    (i + n) mod len(manipulations), so counts stay balanced and a source used several times
    gets different manipulations.

    Args:
        config: Dataset settings.

    Returns:
        The manifest, with columns `MANIFEST_COLUMNS`.
    """
    rows: list[dict[str, Any]] = []
    for index in range(config.n_real):
        real, offset_s = _plan_real(config, index)
        rows.append(real)
        n_fakes = len(range(index, config.n_fake, config.n_real))  # fakes index, index + n_real...
        rows += [_plan_fake(config, real, offset_s, index, nth) for nth in range(n_fakes)]
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return manifest.astype({"seed": "int64"})


def render_image(row: Mapping[str, Any], config: DemoConfig) -> Image.Image:
    """Render one manifest row; deterministic and independent of any other row.

    A fake re-renders its source from the source's seed (the last few sources are cached, so
    rendering in manifest order costs about one render per image).

    Args:
        row: A manifest row (dict or pandas Series) from `plan_manifest(config)`.
        config: The config the manifest was planned with.

    Returns:
        An RGB image of `config.image_size` x `config.image_size`.

    Raises:
        ValueError: if the row's manipulation is unknown.
    """
    manipulation = row["manipulation"]
    if manipulation == "none":
        seed, group_a, group_b = int(row["seed"]), str(row["group_a"]), str(row["group_b"])
        return Image.fromarray(_photo(seed, group_a, group_b, config.image_size).image)
    if manipulation not in MANIPULATIONS:
        allowed = ", ".join(("none", *MANIPULATIONS))
        raise ValueError(f"unknown manipulation {manipulation!r}; allowed: {allowed}")
    source, _ = _plan_real(config, int(str(row["source_id"]).removeprefix("src_")))
    photo = _photo(source["seed"], source["group_a"], source["group_b"], config.image_size)
    rng = np.random.default_rng([int(row["seed"]), 1])
    if manipulation == "double_jpeg":
        pixels = double_jpeg(rng, photo.image, photo.quality)
    else:
        # Face manipulations start from the camera output before its JPEG and then go through
        # the same camera JPEG stage as reals, so fakes are not all double-compressed.
        make = self_blend if manipulation == "self_blended" else gan_upsample
        pixels, _ = camera_jpeg(rng, make(rng, photo.raw, photo.landmarks))
    return Image.fromarray(pixels)


def write_demo_dataset(
    out_dir: str | Path, config: DemoConfig, *, progress: bool = True
) -> pd.DataFrame:
    """Render every image as PNG under `out_dir` and write `out_dir/manifest.csv`.

    The manifest is written last, so an interrupted run leaves no manifest pointing at
    missing images.

    Args:
        out_dir: Output folder (created if needed); image paths are relative to it.
        config: Dataset settings.
        progress: Show a tqdm progress bar on stderr (when it is a terminal).

    Returns:
        The manifest that was written.
    """
    out = Path(out_dir)
    manifest = plan_manifest(config)
    logger.info("Writing %d demo images (%d real, %d fake, %d px) to %s",
                len(manifest), config.n_real, config.n_fake, config.image_size, out)
    start, n_bytes = time.perf_counter(), 0
    for folder in {(out / p).parent for p in manifest["image_path"]}:
        folder.mkdir(parents=True, exist_ok=True)
    rows = manifest.to_dict("records")
    hidden = not show_progress_bar(progress)  # a bar on a terminal; elsewhere the log lines
    for row in tqdm(rows, desc="demo images", unit="img", disable=hidden):
        path = out / row["image_path"]
        # Noisy photos barely compress: level 1 is ~3x faster than 6 for ~6% more bytes.
        render_image(row, config).save(path, format="PNG", compress_level=1)
        n_bytes += path.stat().st_size
    manifest.to_csv(out / "manifest.csv", index=False)
    logger.info("Wrote %d images and manifest.csv to %s in %.1f s (%.1f MB)",
                len(manifest), out, time.perf_counter() - start, n_bytes / 1e6)
    return manifest


@functools.lru_cache(maxsize=8)
def _photo(seed: int, group_a: str, group_b: str, size: int) -> Photo:
    photo = render_photo(seed, group_a, group_b, size)
    for array in (photo.raw, photo.image, photo.landmarks):
        array.setflags(write=False)  # shared through the cache
    return photo


def _row_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def _max_delay_s(config: DemoConfig) -> int:
    return min(_MAX_FAKE_DELAY_S, config.span_days * 86400 // 50)


def _timestamp(config: DemoConfig, offset_s: int) -> str:
    start = datetime.combine(config.start_date, datetime.min.time(), tzinfo=UTC)
    return iso(start + timedelta(seconds=offset_s))


def _plan_real(config: DemoConfig, index: int) -> tuple[dict[str, Any], int]:
    """Manifest row of real `index` and its capture time in seconds after the start."""
    seed = _row_seed(config.seed, _REAL, index)
    rng = np.random.default_rng([seed, 0])
    source_id = f"src_{index:06d}"
    offset_s = int(rng.integers(0, config.span_days * 86400 - _max_delay_s(config)))
    row = {
        "image_path": f"images/{source_id}/real.png",
        "label": "real",
        "source_id": source_id,
        "manipulation": "none",
        "group_a": str(rng.choice(list(GROUP_A), p=list(GROUP_A.values()))),
        "group_b": str(rng.choice(list(GROUP_B), p=list(GROUP_B.values()))),
        "captured_at": _timestamp(config, offset_s),
        "seed": seed,
    }
    return row, offset_s


def _plan_fake(
    config: DemoConfig, real: Mapping[str, Any], real_offset_s: int, index: int, nth: int
) -> dict[str, Any]:
    """Manifest row of the `nth` fake made from `real`, the real number `index`."""
    seed = _row_seed(config.seed, _FAKE, index, nth)
    manipulation = config.manipulations[(index + nth) % len(config.manipulations)]
    delay_s = int(np.random.default_rng([seed, 0]).integers(60, _max_delay_s(config) + 1))
    return {
        **real,
        "image_path": f"images/{real['source_id']}/{manipulation}_{nth}.png",
        "label": "fake",
        "manipulation": manipulation,
        "captured_at": _timestamp(config, real_offset_s + delay_s),
        "seed": seed,
    }
