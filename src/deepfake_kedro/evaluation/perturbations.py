"""Image perturbations for robustness testing, and a store that serves perturbed images.

The set follows the distortions of DeeperForensics-1.0 (Jiang et al., CVPR 2020), which applies
colour saturation change, colour contrast change, local block-wise distortion, white Gaussian
noise, Gaussian blur and JPEG compression at five levels each. We keep JPEG, blur, noise,
contrast and saturation, add down/up-scaling (the resizing every upload pipeline does), drop
the block-wise distortion (rare outside that benchmark), and use three or four levels so that
re-extracting features stays affordable. Every perturbation is deterministic for a given image,
severity and seed.

:class:`PerturbedImageStore` wraps an image store so that the project's feature extraction
(``features.engine.iter_features``) reads perturbed images through the same backbone and
preprocessing code as clean ones. :class:`PerturbationViews` serves every perturbation of a
store in one extraction pass (a ``view`` per manifest row), and :func:`view_key` names a
perturbed view in the feature cache: content hash + perturbation spec, so a view is
extracted once per backbone identity.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter

logger = logging.getLogger(__name__)

Perturbation = Callable[[Image.Image, float, np.random.Generator], Image.Image]


class _ByteStore(Protocol):
    def read_bytes(self, path: str) -> bytes: ...


def _jpeg_bytes(image: Image.Image, quality: float) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(round(quality)))
    return buffer.getvalue()


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as opened:
        return opened.convert("RGB")


def _jpeg(image: Image.Image, quality: float, rng: np.random.Generator) -> Image.Image:
    """Re-compress as JPEG at ``quality`` (1-100, lower is stronger)."""
    return _decode(_jpeg_bytes(image, quality))


def _blur(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur with standard deviation ``sigma`` pixels."""
    if sigma == 0:
        return image.copy()
    return image.filter(ImageFilter.GaussianBlur(radius=float(sigma)))


def _noise(image: Image.Image, std: float, rng: np.random.Generator) -> Image.Image:
    """Additive white Gaussian noise of standard deviation ``std`` (0-255 units), per channel."""
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + rng.normal(0.0, float(std), size=pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), mode="RGB")


def _rescale(image: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Down-scale by ``factor`` (0-1] and back up to the original size, bicubic both ways."""
    if factor == 1:
        return image.copy()
    width, height = image.size
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    return image.resize(small, Image.Resampling.BICUBIC).resize(
        (width, height), Image.Resampling.BICUBIC
    )


def _contrast(image: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Scale contrast by ``factor`` (1 unchanged, 0 flat grey, >1 stronger)."""
    return ImageEnhance.Contrast(image).enhance(float(factor))


def _saturation(image: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Scale colour saturation by ``factor`` (1 unchanged, 0 greyscale, >1 more vivid)."""
    return ImageEnhance.Color(image).enhance(float(factor))


PERTURBATIONS: dict[str, Perturbation] = {
    "jpeg": _jpeg,
    "blur": _blur,
    "noise": _noise,
    "rescale": _rescale,
    "contrast": _contrast,
    "saturation": _saturation,
}
"""Name -> ``f(image, severity, rng)``; severity is JPEG quality, blur sigma (px), noise std
(0-255), rescale factor, contrast factor or saturation factor."""

DEFAULT_SEVERITIES: dict[str, list[float]] = {
    "jpeg": [90, 75, 50, 30],
    "blur": [0.5, 1.0, 2.0],
    "noise": [2, 5, 10],
    "rescale": [0.75, 0.5, 0.25],
    "contrast": [0.7, 0.5, 1.5],
    "saturation": [0.5, 0.0, 1.5],
}
"""Severities per perturbation, mildest first (for contrast and saturation the last level
increases rather than decreases the property)."""

# (low, high, low inclusive) bounds of valid severities, and how a severity is written.
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "jpeg": (1, 100, True),
    "blur": (0, 50, True),
    "noise": (0, 255, True),
    "rescale": (0, 1, False),
    "contrast": (0, 10, True),
    "saturation": (0, 10, True),
}
_LABELS: dict[str, str] = {
    "jpeg": "q={}",
    "blur": "sigma={}",
    "noise": "std={}",
    "rescale": "x{}",
    "contrast": "x{}",
    "saturation": "x{}",
}


def check_perturbation(name: str, severity: float) -> None:
    """Raise ``ValueError`` if ``name`` is unknown or ``severity`` is out of its range.

    Args:
        name: A key of :data:`PERTURBATIONS`.
        severity: Its severity parameter.
    """
    if name not in PERTURBATIONS:
        raise ValueError(
            f"unknown perturbation {name!r}; allowed: {', '.join(sorted(PERTURBATIONS))}"
        )
    low, high, low_inclusive = _BOUNDS[name]
    value = float(severity)
    above_low = value >= low if low_inclusive else value > low
    if not (np.isfinite(value) and above_low and value <= high):
        opening = "[" if low_inclusive else "("
        raise ValueError(
            f"severity {severity!r} is out of range for perturbation {name!r}; "
            f"it must lie in {opening}{low:g}, {high:g}]"
        )


def perturbation_label(name: str, severity: float) -> str:
    """Human-readable name of one condition, e.g. ``"jpeg q=30"`` or ``"blur sigma=2"``."""
    template = _LABELS.get(name, "{}")
    return f"{name} {template.format(f'{float(severity):g}')}"


def perturb(image: Image.Image, name: str, severity: float, seed: int = 0) -> Image.Image:
    """Apply one perturbation to an image.

    Args:
        image: Any PIL image; it is converted to RGB first.
        name: A key of :data:`PERTURBATIONS`.
        severity: The perturbation's parameter (see :data:`PERTURBATIONS`).
        seed: Seeds the random part (noise); same inputs give the same output.

    Returns:
        A new RGB image of the same size.

    Raises:
        ValueError: if the name is unknown or the severity out of range.
    """
    check_perturbation(name, severity)
    rgb = image.convert("RGB")
    out = PERTURBATIONS[name](rgb, float(severity), np.random.default_rng(seed))
    return out if out.mode == "RGB" else out.convert("RGB")


def path_seed(seed: int, path: str) -> int:
    """A stable per-image seed from a base seed and the image path (same across processes)."""
    digest = hashlib.sha256(f"{int(seed)}\x00{path}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class PerturbedImageStore:
    """An image store whose images come back perturbed, for re-extracting features.

    Duck-types :class:`~deepfake_kedro.io.image_store.ImageStore` as far as feature extraction
    needs it (``read_bytes``, ``root_uri``) and pickles with the wrapped store, so DataLoader
    workers can use it.

    Args:
        store: The store of the clean images (anything with ``read_bytes(path)``).
        name: A key of :data:`PERTURBATIONS`.
        severity: The perturbation's parameter.
        seed: Base seed; each image's noise is seeded from it and the image path.

    Raises:
        ValueError: if the name is unknown or the severity out of range.
    """

    def __init__(self, store: _ByteStore, name: str, severity: float, seed: int = 0) -> None:
        check_perturbation(name, severity)
        self.store = store
        self.name = name
        self.severity = float(severity)
        self.seed = int(seed)

    def __repr__(self) -> str:
        return (
            f"PerturbedImageStore({perturbation_label(self.name, self.severity)!r}, "
            f"seed={self.seed}, store={self.store!r})"
        )

    @property
    def label(self) -> str:
        """Human-readable condition name, e.g. ``"jpeg q=30"``."""
        return perturbation_label(self.name, self.severity)

    @property
    def root_uri(self) -> str:
        """Root of the wrapped store (used in error messages)."""
        return str(getattr(self.store, "root_uri", self.store))

    def read_bytes(self, path: str) -> bytes:
        """Bytes of the perturbed image: PNG (lossless), or the JPEG itself for ``jpeg``.

        Raises:
            ValueError: if the image cannot be decoded or perturbed (names path and condition).
        """
        data = self.store.read_bytes(path)
        try:
            image = _decode(data)
            if self.name == "jpeg":
                return _jpeg_bytes(image, self.severity)
            out = perturb(image, self.name, self.severity, path_seed(self.seed, path))
            buffer = io.BytesIO()
            out.save(buffer, format="PNG", compress_level=1)
            return buffer.getvalue()
        except Exception as exc:
            raise ValueError(
                f"cannot apply {self.label} to image {path!r} under {self.root_uri!r} "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def __getstate__(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "name": self.name,
            "severity": self.severity,
            "seed": self.seed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["store"], state["name"], state["severity"], state["seed"])


PERTURBATION_CODE_VERSION = 1
"""Bump when a perturbation's output changes: perturbed views cached before are not reused."""


def view_name(name: str, severity: float) -> str:
    """The ``view`` of a perturbed row, e.g. ``"jpeg=30.0"`` (see :class:`PerturbationViews`)."""
    return f"{name}={float(severity)!r}"


def parse_view(view: str) -> tuple[str, float]:
    """``(name, severity)`` of a :func:`view_name`."""
    name, _, severity = view.partition("=")
    return name, float(severity)


def view_key(content_hash: str, name: str, severity: float, seed: int) -> str:
    """The feature-cache key of an image under a perturbation: its content hash (so it shards
    with the image) + a digest of the perturbation spec (name, severity, seed, code version)."""
    spec = json.dumps(
        {"name": name, "seed": int(seed), "severity": float(severity),
         "version": PERTURBATION_CODE_VERSION},
        sort_keys=True,
    )  # fmt: skip
    return f"{content_hash}~{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


class ViewStore:
    """An image store serving clean images (``read_bytes``) and, per row, a derived view of
    them (``read_view(path, view)``, implemented by subclasses): feature extraction reads
    rows with a ``view`` column through it. Pickles with the wrapped store, so DataLoader
    workers can use it.

    Args:
        store: The store of the clean images (anything with ``read_bytes(path)``).
    """

    def __init__(self, store: _ByteStore) -> None:
        self.store = store

    @property
    def root_uri(self) -> str:
        """Root of the wrapped store (used in error messages)."""
        return str(getattr(self.store, "root_uri", self.store))

    def read_bytes(self, path: str) -> bytes:
        """Bytes of the clean image."""
        return self.store.read_bytes(path)

    def read_view(self, path: str, view: str) -> Image.Image:
        """The image at ``path`` under ``view``, as RGB."""
        raise NotImplementedError

    def _clean(self, path: str) -> Image.Image:
        return _decode(self.store.read_bytes(path))


class PerturbationViews(ViewStore):
    """Every perturbation of a store in one extraction pass (a ``view`` per manifest row).

    Args:
        store: The store of the clean images (anything with ``read_bytes(path)``).
        seed: Base seed; each image's noise is seeded from it and the image path.
    """

    def __init__(self, store: _ByteStore, seed: int = 0) -> None:
        super().__init__(store)
        self.seed = int(seed)

    def __repr__(self) -> str:
        return f"PerturbationViews(seed={self.seed}, store={self.store!r})"

    def read_view(self, path: str, view: str) -> Image.Image:
        """The image at ``path`` under ``view`` (a :func:`view_name`), as RGB; the same pixels
        :class:`PerturbedImageStore` serves for that perturbation.

        Raises:
            ValueError: if the image cannot be decoded or perturbed (names path and view).
        """
        name, severity = parse_view(view)
        try:
            check_perturbation(name, severity)
            return perturb(self._clean(path), name, severity, path_seed(self.seed, path))
        except Exception as exc:
            raise ValueError(
                f"cannot apply {perturbation_label(name, severity)} to image {path!r} under "
                f"{self.root_uri!r} ({type(exc).__name__}: {exc})"
            ) from exc


def perturbed_views(
    rows: pd.DataFrame, conditions: list[tuple[str, float]], seed: int
) -> pd.DataFrame:
    """One row per image and condition, ready for :class:`PerturbationViews`.

    Args:
        rows: Rows with ``image_path`` and ``content_hash``.
        conditions: ``(perturbation, severity)`` pairs, in report order.
        seed: The perturbations' base seed.

    Returns:
        ``rows`` repeated per condition (condition-major) with ``perturbation``,
        ``severity``, ``view``, the image's own hash as ``image_hash`` and the view's cache
        key as ``content_hash``.
    """
    frames = []
    for name, severity in conditions:
        check_perturbation(name, severity)
        hashes = rows["content_hash"].astype(str)
        frames.append(
            rows.assign(
                perturbation=name,
                severity=float(severity),
                view=view_name(name, severity),
                image_hash=hashes,
                content_hash=[view_key(h, name, severity, seed) for h in hashes],
            )
        )
    columns = [*rows.columns, "perturbation", "severity", "view", "image_hash"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
