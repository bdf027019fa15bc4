"""Training-time augmentation: random JPEG, blur, noise, down/up-scaling and colour changes.

Wang et al. (CVPR 2020) show that blur + JPEG augmentation during training is what keeps a
detector working after re-compression. Each operation has a probability and a range
(:class:`AugmentationConfig`, ``feature_extraction.augmentation``); a view samples every
operation independently, in a fixed order, from a generator seeded by the base seed, the
image path and the view number, so the same image and view always give the same pixels.

Frozen branches see ``views`` augmented copies of every training image, extracted once and
kept in the feature cache under :func:`augmented_key` (content hash + augmentation spec +
view), so a second run re-extracts nothing. The ranges are sampled, never the validation
perturbation list: the test split is never augmented, and validation's fixed severities stay
unseen levels. The operations are the validation perturbations' own implementations
(:data:`deepfake_kedro.evaluation.perturbations.PERTURBATIONS`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepfake_kedro.evaluation.perturbations import (
    PERTURBATIONS,
    ViewStore,
    check_perturbation,
    path_seed,
)

AUGMENTATION_CODE_VERSION = 1
"""Bump when an operation's output changes: augmented views cached before are not reused."""

VIEW_PREFIX = "aug:"


class Operation(BaseModel):
    """One augmentation: applied with probability ``p``, its parameter uniform in ``range``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p: float = Field(0.5, ge=0, le=1)
    range: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self) -> Operation:
        if self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)} must be [low, high] with low <= high")
        return self


class AugmentationConfig(BaseModel):
    """Augmented training views (``params:feature_extraction.augmentation``).

    Attributes:
        views: Augmented copies of each training image per frozen branch (0: none).
        seed: Base seed of the sampling.
        jpeg: Re-compression quality (1-100).
        blur: Gaussian blur sigma (px).
        noise: Gaussian noise std (0-255 units).
        rescale: Down-scale factor (0-1], then back up.
        contrast: Contrast factor.
        saturation: Saturation factor.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    views: int = Field(2, ge=0, le=16)
    seed: int = 0
    jpeg: Operation = Operation(p=0.5, range=(35, 95))
    blur: Operation = Operation(p=0.3, range=(0.2, 1.5))
    noise: Operation = Operation(p=0.3, range=(0.5, 6.0))
    rescale: Operation = Operation(p=0.3, range=(0.6, 0.95))
    contrast: Operation = Operation(p=0.3, range=(0.6, 1.4))
    saturation: Operation = Operation(p=0.3, range=(0.4, 1.6))

    @model_validator(mode="after")
    def _ranges_in_bounds(self) -> AugmentationConfig:
        for name in ORDER:
            for value in getattr(self, name).range:
                check_perturbation(name, value)
        return self

    def spec_digest(self) -> str:
        """Digest of everything that decides the views' pixels (not ``views`` itself)."""
        spec = {
            "version": AUGMENTATION_CODE_VERSION,
            "seed": self.seed,
            **{name: getattr(self, name).model_dump(mode="json") for name in ORDER},
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


ORDER = ("rescale", "blur", "noise", "contrast", "saturation", "jpeg")
"""Geometry and optics first, colour next, compression last (as an upload pipeline does)."""


def augment(image: Image.Image, config: AugmentationConfig, seed: int) -> Image.Image:
    """One augmented view of ``image``: each operation with its probability, parameter
    sampled from its range (JPEG quality rounded to an integer). Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    out = image.convert("RGB")
    for name in ORDER:
        op: Operation = getattr(config, name)
        if rng.random() >= op.p:
            continue
        value = float(rng.uniform(*op.range))
        if name == "jpeg":
            value = float(round(value))
        out = PERTURBATIONS[name](out, value, rng)
        out = out if out.mode == "RGB" else out.convert("RGB")
    return out


def view_seed(config: AugmentationConfig, path: str, view: int) -> int:
    """The seed of augmented view ``view`` of the image at ``path``."""
    return path_seed(config.seed * 1009 + view, path)


def augmented_key(content_hash: str, config: AugmentationConfig, view: int) -> str:
    """Feature-cache key of augmented view ``view``: the content hash (so it shards with the
    image) + the augmentation spec + the view number."""
    return f"{content_hash}~a{config.spec_digest()}v{int(view)}"


def augmented_rows(rows: pd.DataFrame, config: AugmentationConfig) -> pd.DataFrame:
    """``rows`` repeated per augmented view, with ``view``, the image's own hash as
    ``image_hash``, the view number ``view_index`` and the view's key as ``content_hash``."""
    frames = []
    hashes = rows["content_hash"].astype(str)
    for view in range(config.views):
        frames.append(
            rows.assign(
                view=f"{VIEW_PREFIX}{view}",
                view_index=view,
                image_hash=hashes,
                content_hash=[augmented_key(h, config, view) for h in hashes],
            )
        )
    if not frames:
        return rows.iloc[0:0].assign(view="", view_index=0, image_hash="")
    return pd.concat(frames, ignore_index=True)


class AugmentedViews(ViewStore):
    """An image store serving clean images and, per row, augmented training views.

    Args:
        store: The store of the clean images (anything with ``read_bytes(path)``).
        config: The augmentation.
    """

    def __init__(self, store: Any, config: AugmentationConfig) -> None:
        super().__init__(store)
        self.config = config

    def __repr__(self) -> str:
        return f"AugmentedViews(views={self.config.views}, store={self.store!r})"

    def read_view(self, path: str, view: str) -> Image.Image:
        """Augmented view ``view`` (``"aug:<k>"``) of the image at ``path``, as RGB."""
        index = int(view.removeprefix(VIEW_PREFIX))
        return augment(self._clean(path), self.config, view_seed(self.config, path, index))
