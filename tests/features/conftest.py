"""A tiny fake FeatureExtractor and generated PNGs for feature-extraction tests."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from pydantic import BaseModel

from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.io.image_store import ImageStore


class FakeConfig(BaseModel):
    kind: str = "resnet"
    size: int = 16
    seed: int = 0
    feature_dim: int = 8


class FakeExtractor(torch.nn.Module):
    """Follows the FeatureExtractor interface: uint8 [3,S,S] in, float32 [B, dim] out."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.config = FakeConfig(**kwargs)
        self.feature_dim = self.config.feature_dim
        generator = torch.Generator().manual_seed(self.config.seed)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.head = torch.nn.Linear(4, self.feature_dim)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=generator))
            self.head.bias.zero_()
        self.preprocess_calls = 0

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        self.preprocess_calls += 1
        size = self.config.size
        array = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        x = self.conv(x).relu().mean(dim=(2, 3))
        return self.head(x)

    def identity(self) -> dict[str, Any]:
        return {"name": "fake", **self.config.model_dump()}


def write_images(root: Path, n: int, seed: int, prefix: str = "img") -> pd.DataFrame:
    """Write n random PNGs (32-64 px) under root/images; return image_path + content_hash."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        h, w = rng.integers(32, 65, size=2)
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        data = buffer.getvalue()
        path = f"images/{prefix}_{seed}_{i:04d}.png"
        (root / path).write_bytes(data)
        rows.append({"image_path": path, "content_hash": hashlib.sha256(data).hexdigest()})
    return pd.DataFrame(rows)


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    return tmp_path / "raw"


@pytest.fixture
def manifest(image_root: Path) -> pd.DataFrame:
    """40 images plus one row repeating an image under another path (41 rows, 40 unique)."""
    frame = write_images(image_root, 40, seed=0)
    repeat = frame.iloc[[5]].copy()
    repeat["image_path"] = "images/copy_of_5.png"
    (image_root / repeat["image_path"].iloc[0]).write_bytes(
        (image_root / frame["image_path"].iloc[5]).read_bytes()
    )
    return pd.concat([frame, repeat], ignore_index=True)


@pytest.fixture
def store(image_root: Path, manifest: pd.DataFrame) -> ImageStore:
    return ImageStore(str(image_root))


@pytest.fixture
def extractor() -> FakeExtractor:
    return FakeExtractor()


@pytest.fixture
def config() -> ExtractionConfig:
    return ExtractionConfig(
        batch_size=8,
        num_workers=0,
        device="cpu",
        precision="fp32",
        progress=False,
        rows_per_shard=16,
    )


@pytest.fixture
def make_extractor() -> type[FakeExtractor]:
    """The fake extractor class: ``make_extractor(seed=1, size=24, feature_dim=16, kind=...)``."""
    return FakeExtractor


@pytest.fixture
def make_images() -> Any:
    """``make_images(root, n, seed, prefix)`` writes PNGs and returns their manifest rows."""
    return write_images
