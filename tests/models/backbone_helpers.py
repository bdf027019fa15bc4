"""Small synthetic images for the backbone tests."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def scene(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random RGB scene with fine texture (uint8 HxWx3), like a small photo."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size) ** 1.8
    spectrum = amplitude * np.exp(2j * np.pi * rng.random((3, size, size)))
    field = np.fft.ifft2(spectrum).real
    field = (field - field.mean()) / field.std()
    pixels = 128 + 40 * field + rng.normal(0, 2.0, field.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through a JPEG file at `quality` (4:2:0)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def batch(*images: np.ndarray) -> torch.Tensor:
    """uint8 [B, 3, H, W] from HxWx3 arrays."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def torchvision_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """The state dict of torchvision's ``arch`` with random weights of ``seed``, as a user's
    model saves it (BatchNorm unfolded); the same weights as an extractor with that seed."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torchvision.models.get_model(arch, weights=None).state_dict()
