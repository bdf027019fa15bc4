"""Tiny real images and manifests for the ingestion tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfake_kedro.ingestion import IngestionConfig, validate_manifest
from deepfake_kedro.io import ImageStore

N_SOURCES = 20
IMAGE_SIZE = (72, 64)  # width, height: the shorter side equals the default min_image_size


def write_image(
    path: Path, size: tuple[int, int] = IMAGE_SIZE, seed: int = 0, fmt: str = "PNG"
) -> Path:
    """Write a small noisy RGB image (noise keeps files distinct and not trivially small)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, fmt)
    return path


@pytest.fixture
def make_image():
    """The :func:`write_image` helper, for tests that write their own images."""
    return write_image


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """``<tmp>/raw`` with 40 PNGs: a real and a fake image for each of 20 sources."""
    root = tmp_path / "raw"
    for s in range(N_SOURCES):
        for k, label in enumerate(("real", "fake")):
            write_image(root / "images" / f"s{s:02d}_{label}.png", seed=2 * s + k)
    return root


@pytest.fixture
def manifest() -> pd.DataFrame:
    """A valid manifest for ``image_root``: groups of 20 rows, ISO timestamps."""
    rows = []
    for s in range(N_SOURCES):
        for label in ("real", "fake"):
            rows.append(
                {
                    "image_path": f"images/s{s:02d}_{label}.png",
                    "label": label,
                    "source_id": f"src{s:02d}",
                    "manipulation": "none" if label == "real" else ("faceswap", "gan")[s % 2],
                    "group_a": "a1" if s < N_SOURCES // 2 else "a2",
                    "group_b": ("b1", "b2")[s % 2],
                    "captured_at": f"2024-01-{s + 1:02d}T10:00:00Z",
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def store(image_root: Path) -> ImageStore:
    return ImageStore(str(image_root))


@pytest.fixture
def config() -> IngestionConfig:
    return IngestionConfig(num_workers=4)


@pytest.fixture
def validated(manifest: pd.DataFrame, store: ImageStore, config: IngestionConfig) -> pd.DataFrame:
    valid, problems = validate_manifest(manifest, store, config)
    assert problems.empty
    return valid
