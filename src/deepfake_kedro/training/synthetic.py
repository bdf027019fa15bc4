"""Synthetic fakes made from the training split's real images (SBI: Shiohara & Yamasaki,
"Detecting Deepfakes with Self-Blended Images", CVPR 2022).

Each synthetic fake is a real training image blended with a jittered copy of itself through a
random region (an ellipse or a convex polygon anywhere in the image, or inside the row's
``face_box`` when the manifest has one), elastically deformed and soft-edged: the blending
traces of a face swap, with no landmarks and no labelled fake. A team with many real images
of its domain and few labelled fakes can train on them (``feature_extraction.synthetic_fakes``).

The blending is :mod:`deepfake_kedro.synthesis.blend`, the same code the demo generator's
``self_blended`` fakes use; the region is :mod:`deepfake_kedro.synthesis.masks`.

Frozen branches see ``per_real`` synthetic fakes of every real training image as views
(like the augmented views of :mod:`deepfake_kedro.training.augmentation`): extracted once
into the branch's feature cache under :func:`synthetic_key` (content hash + synthesis spec
+ face box + index), so a second run re-extracts nothing. Validation and test images never
get synthetic fakes. A trainable branch draws them on the fly with :func:`synthesize`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from deepfake_kedro.evaluation.perturbations import ViewStore, path_seed
from deepfake_kedro.ingestion.face_box import COLUMN as FACE_BOX
from deepfake_kedro.ingestion.face_box import FaceBox, format_face_box, parse_face_box
from deepfake_kedro.synthesis.blend import BlendConfig, self_blend
from deepfake_kedro.synthesis.masks import MaskConfig, random_region

SYNTHESIS_CODE_VERSION = 1
"""Bump when a synthetic fake's pixels change: fakes cached before are not reused."""

VIEW_PREFIX = "sbi:"
MANIPULATION = "synthetic_self_blend"


class SyntheticFakesConfig(BaseModel):
    """Synthetic self-blended fakes of the training reals
    (``params:feature_extraction.synthetic_fakes``).

    Attributes:
        enabled: Make them (off by default).
        per_real: Synthetic fakes per real training image.
        seed: Base seed (each fake's seed also depends on the image path and its index).
        mask: The random region: kind, area, aspect, vertices.
        blend: The blend: colour and sharpness jitter of the copy, its shift/scale, elastic
            deformation and soft edge of the mask, blend ratios.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    per_real: int = Field(1, ge=1, le=16)
    seed: int = 0
    mask: MaskConfig = MaskConfig()
    blend: BlendConfig = BlendConfig()

    @property
    def count(self) -> int:
        """Synthetic fakes per real training image (0 when disabled)."""
        return self.per_real if self.enabled else 0

    def spec_digest(self) -> str:
        """Digest of everything that decides the fakes' pixels (not ``enabled``/``per_real``,
        so more fakes per real reuse the ones already cached)."""
        spec = {
            "version": SYNTHESIS_CODE_VERSION,
            "seed": self.seed,
            "mask": self.mask.model_dump(mode="json"),
            "blend": self.blend.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def synthesize(
    image: Image.Image,
    seed: int,
    config: SyntheticFakesConfig,
    face_box: FaceBox | None = None,
) -> Image.Image:
    """One synthetic fake of ``image``, deterministic in ``seed``.

    Args:
        image: A real image (any mode; blended in RGB).
        seed: Seed of the region and the blend (:func:`synthetic_seed` for a cached view).
        config: Region and blend ranges (``enabled`` is not checked: the caller asked).
        face_box: Relative ``(x0, y0, x1, y1)`` the region lies in (None: anywhere).

    Returns:
        The RGB self-blended image, the size of ``image``.
    """
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image.convert("RGB"))
    mask, centre, scale = random_region(rng, pixels.shape[:2], config.mask, face_box)
    return Image.fromarray(self_blend(rng, pixels, mask, centre, config.blend, scale=scale))


def synthetic_seed(config: SyntheticFakesConfig, path: str, index: int) -> int:
    """The seed of synthetic fake ``index`` of the image at ``path``."""
    return path_seed(config.seed * 1009 + int(index), f"{VIEW_PREFIX}{path}")


def synthetic_key(
    content_hash: str, config: SyntheticFakesConfig, index: int, face_box: FaceBox | None = None
) -> str:
    """Feature-cache key of synthetic fake ``index``: the content hash (so it shards with the
    image) + the synthesis spec (and the face box, which moves the region) + the index."""
    spec = config.spec_digest()
    if face_box is not None:
        spec = hashlib.sha256(f"{spec}|{format_face_box(face_box)}".encode()).hexdigest()[:16]
    return f"{content_hash}~s{spec}i{int(index)}"


def face_boxes(rows: pd.DataFrame) -> dict[str, FaceBox]:
    """``{image_path: face_box}`` of the rows that have one (none without the column).

    Raises:
        ValueError: naming the image and the expected form for a malformed ``face_box``.
    """
    if FACE_BOX not in rows.columns:
        return {}
    boxes = {}
    for path, value in zip(rows["image_path"].astype(str), rows[FACE_BOX], strict=True):
        try:
            box = parse_face_box(value)
        except ValueError as exc:
            raise ValueError(f"manifest row {path}: {exc}") from None
        if box is not None:
            boxes[path] = box
    return boxes


def synthetic_rows(manifest: pd.DataFrame, config: SyntheticFakesConfig) -> pd.DataFrame:
    """The synthetic fakes to make: ``per_real`` per real image of the train split (never
    val or test, never a fake), one per unique image.

    Returns:
        The source rows repeated per index, labelled ``fake`` (manipulation
        ``synthetic_self_blend``), with ``view``, the source's hash as ``image_hash``, the
        index ``view_index`` and the fake's key as ``content_hash``; empty when disabled.
    """
    sources = manifest[(manifest["split"] == "train") & (manifest["label"] == "real")]
    sources = sources.drop_duplicates("content_hash")
    if not config.count or sources.empty:
        return sources.iloc[0:0].assign(view="", view_index=0, image_hash="")
    boxes = face_boxes(sources)
    paths = sources["image_path"].astype(str).tolist()
    hashes = sources["content_hash"].astype(str).tolist()
    frames = [
        sources.assign(
            label="fake",
            manipulation=MANIPULATION,
            view=f"{VIEW_PREFIX}{index}",
            view_index=index,
            image_hash=hashes,
            content_hash=[
                synthetic_key(h, config, index, boxes.get(p))
                for h, p in zip(hashes, paths, strict=True)
            ],
        )
        for index in range(config.count)
    ]
    return pd.concat(frames, ignore_index=True)


class SyntheticFakes(ViewStore):
    """An image store serving clean images and, per row, synthetic fakes of them.

    Args:
        store: The store of the clean images (anything with ``read_bytes(path)``).
        config: The synthesis.
        boxes: Face box per image path (:func:`face_boxes`); others blend anywhere.
    """

    def __init__(
        self,
        store: Any,
        config: SyntheticFakesConfig,
        boxes: Mapping[str, FaceBox] | None = None,
    ) -> None:
        super().__init__(store)
        self.config = config
        self.boxes = dict(boxes or {})

    def __repr__(self) -> str:
        return f"SyntheticFakes(per_real={self.config.count}, store={self.store!r})"

    def read_view(self, path: str, view: str) -> Image.Image:
        """Synthetic fake ``view`` (``"sbi:<k>"``) of the image at ``path``, as RGB."""
        index = int(view.removeprefix(VIEW_PREFIX))
        seed = synthetic_seed(self.config, path, index)
        return synthesize(self._clean(path), seed, self.config, self.boxes.get(path))
