"""Perturbations: shape, determinism, monotonic severity, and the perturbed image store."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deepfake_kedro.evaluation.perturbations import (
    DEFAULT_SEVERITIES,
    PERTURBATIONS,
    PerturbedImageStore,
    path_seed,
    perturb,
)
from deepfake_kedro.io.image_store import ImageStore


def _textured(size: int = 64, seed: int = 0) -> Image.Image:
    """Smooth colour gradients plus fine texture: both low and high frequencies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([200 * xx + 30, 200 * yy + 30, 120 + 80 * np.sin(6 * xx)], axis=-1)
    texture = rng.normal(0, 25, size=(size, size, 3))
    return Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8), mode="RGB")


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(_array(a) - _array(b)).mean())


def _high_freq(image: Image.Image) -> float:
    pixels = _array(image.convert("L"))
    return float((np.diff(pixels, axis=0) ** 2).mean() + (np.diff(pixels, axis=1) ** 2).mean())


GRID = [(name, s) for name, levels in DEFAULT_SEVERITIES.items() for s in levels]


def test_defaults_cover_every_perturbation():
    assert set(DEFAULT_SEVERITIES) == set(PERTURBATIONS)
    assert DEFAULT_SEVERITIES["jpeg"] == [90, 75, 50, 30]


@pytest.mark.parametrize(("name", "severity"), GRID)
def test_returns_rgb_of_the_same_size(name, severity):
    image = _textured().resize((48, 37)).convert("RGBA")
    out = perturb(image, name, severity, seed=3)
    assert out.mode == "RGB"
    assert out.size == (48, 37)


@pytest.mark.parametrize(("name", "severity"), GRID)
def test_is_deterministic_per_seed(name, severity):
    image = _textured()
    first = np.asarray(perturb(image, name, severity, seed=7))
    assert np.array_equal(first, np.asarray(perturb(image, name, severity, seed=7)))


def test_noise_depends_on_the_seed():
    image = _textured()
    assert _diff(perturb(image, "noise", 5, seed=1), perturb(image, "noise", 5, seed=2)) > 1


def test_stronger_jpeg_changes_the_image_more():
    image = _textured()
    assert _diff(image, perturb(image, "jpeg", 30)) > _diff(image, perturb(image, "jpeg", 90))


def test_stronger_blur_removes_more_high_frequencies():
    image = _textured()
    mild, strong = (_high_freq(perturb(image, "blur", s)) for s in (0.5, 2.0))
    assert strong < mild < _high_freq(image)


@pytest.mark.parametrize("std", [2, 5, 10])
def test_noise_has_the_requested_std(std):
    grey = Image.new("RGB", (96, 96), (128, 128, 128))
    residual = _array(perturb(grey, "noise", std, seed=0)) - 128
    assert residual.std() == pytest.approx(std, rel=0.1)
    assert abs(residual.mean()) < 0.3


def test_smaller_rescale_loses_more_detail():
    image = _textured()
    assert _diff(image, perturb(image, "rescale", 0.25)) > _diff(
        image, perturb(image, "rescale", 0.75)
    )
    assert _high_freq(perturb(image, "rescale", 0.25)) < _high_freq(image)


def test_zero_saturation_gives_grey():
    pixels = _array(perturb(_textured(), "saturation", 0.0))
    assert np.abs(pixels[..., 0] - pixels[..., 1]).max() <= 1
    assert np.abs(pixels[..., 1] - pixels[..., 2]).max() <= 1


def test_contrast_factor_scales_the_spread():
    image = _textured()
    spread = _array(image.convert("L")).std()
    low = _array(perturb(image, "contrast", 0.5).convert("L")).std()
    high = _array(perturb(image, "contrast", 1.5).convert("L")).std()
    assert low < spread < high


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown perturbation 'sharpen'.*blur.*jpeg"):
        perturb(_textured(), "sharpen", 1.0)


@pytest.mark.parametrize(("name", "severity"), [("jpeg", 0), ("rescale", 1.5), ("noise", -1)])
def test_out_of_range_severity_is_refused(name, severity):
    with pytest.raises(ValueError, match="out of range"):
        perturb(_textured(), name, severity)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    buffer = io.BytesIO()
    _textured(32).save(buffer, format="PNG")
    # Two files with the same content: only the path tells them apart.
    for name in ("a.png", "b.png"):
        (root / "images" / name).write_bytes(buffer.getvalue())
    return ImageStore(str(root))


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def test_store_serves_the_perturbed_image_losslessly(store):
    noisy = PerturbedImageStore(store, "noise", 5, seed=1)
    data = noisy.read_bytes("images/a.png")
    assert data.startswith(b"\x89PNG")
    clean = Image.fromarray(_decode(store.read_bytes("images/a.png")))
    expected = perturb(clean, "noise", 5, path_seed(1, "images/a.png"))
    assert np.array_equal(_decode(data), np.asarray(expected))


def test_store_serves_jpeg_bytes_for_jpeg(store):
    data = PerturbedImageStore(store, "jpeg", 30).read_bytes("images/a.png")
    assert data.startswith(b"\xff\xd8")
    clean = Image.fromarray(_decode(store.read_bytes("images/a.png")))
    assert np.array_equal(_decode(data), np.asarray(perturb(clean, "jpeg", 30)))


def test_store_noise_differs_per_path_but_repeats(store):
    noisy = PerturbedImageStore(store, "noise", 10, seed=0)
    a1, a2 = noisy.read_bytes("images/a.png"), noisy.read_bytes("images/a.png")
    assert a1 == a2
    assert not np.array_equal(_decode(a1), _decode(noisy.read_bytes("images/b.png")))
    other_seed = PerturbedImageStore(store, "noise", 10, seed=1).read_bytes("images/a.png")
    assert not np.array_equal(_decode(a1), _decode(other_seed))


def test_store_pickles_and_names_its_perturbation(store):
    noisy = PerturbedImageStore(store, "noise", 5, seed=4)
    clone = pickle.loads(pickle.dumps(noisy))
    assert clone.read_bytes("images/b.png") == noisy.read_bytes("images/b.png")
    assert "noise std=5" in repr(clone)
    assert clone.root_uri == store.root_uri


def test_store_refuses_bad_conditions_early(store):
    with pytest.raises(ValueError, match="unknown perturbation"):
        PerturbedImageStore(store, "warp", 1.0)


class _MeanColour(torch.nn.Module):
    """Minimal FeatureExtractor: per-channel mean and std of a 16x16 resize."""

    feature_dim = 6

    class config:  # mirrors extractor.config.kind
        kind = "mean_colour"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.resize((16, 16)), dtype=np.uint8).copy()
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def test_iter_features_reads_through_the_perturbed_store(store):
    from deepfake_kedro.features import ExtractionConfig
    from deepfake_kedro.features.engine import iter_features

    rows = pd.DataFrame({"image_path": ["images/a.png"], "content_hash": ["00"]})
    config = ExtractionConfig(
        batch_size=2,
        num_workers=0,
        device="cpu",
        precision="fp32",
        channels_last=False,
        progress=False,
    )
    clean = np.concatenate([f for _, f in iter_features(rows, store, _MeanColour(), config)])
    grey = PerturbedImageStore(store, "saturation", 0.0)
    flat = np.concatenate([f for _, f in iter_features(rows, grey, _MeanColour(), config)])
    assert clean.shape == flat.shape == (1, 6)
    assert np.ptp(flat[0, :3]) < 0.01 < np.ptp(clean[0, :3])
