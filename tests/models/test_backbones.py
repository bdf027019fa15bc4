"""Backbones: shapes, determinism, identity, weight files, errors, precision, preprocessing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from backbone_helpers import batch, scene, torchvision_state
from PIL import Image

from deepfake_kedro.models import (
    FEATURE_VERSION,
    BackboneConfig,
    FeatureExtractor,
    build_extractor,
    preprocess_image,
)
from deepfake_kedro.models.backbones import _mean_std
from deepfake_kedro.models.spectral import FEATURE_DIM as SPECTRAL_DIM
from deepfake_kedro.models.weights import file_sha256

RESNET18 = {"kind": "resnet", "arch": "resnet18", "image_size": 64}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Four different 64 px scenes, uint8 [4, 3, 64, 64]."""
    return batch(*(scene(64, seed) for seed in range(4)))


def _clip(tiny_clip: str, **overrides) -> dict:
    return {"kind": "clip", "arch": tiny_clip, "image_size": 64, **overrides}


def _features(extractor: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return extractor(images)


# ------------------------------------------------------------------------ shapes, seeds


@pytest.mark.parametrize(
    ("params", "dim"),
    [
        (RESNET18, 512 + 2 * (64 + 64 + 128)),
        ({**RESNET18, "early_stats": False}, 512),
        ({"kind": "spectral", "image_size": 64}, SPECTRAL_DIM),
    ],
)
def test_feature_shapes(params: dict, dim: int, images: torch.Tensor) -> None:
    extractor = build_extractor(params)
    features = _features(extractor, images)
    assert extractor.feature_dim == dim
    assert features.shape == (4, dim) and features.dtype == torch.float32
    assert torch.isfinite(features).all()


def test_clip_features_are_unit_embeddings(tiny_clip: str, images: torch.Tensor) -> None:
    extractor = build_extractor(_clip(tiny_clip))
    features = _features(extractor, images)
    assert extractor.feature_dim == 32 and features.shape == (4, 32)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(4))


def test_default_arch_per_kind() -> None:
    assert BackboneConfig(kind="resnet").arch == "resnet50"
    assert BackboneConfig(kind="clip").arch == "ViT-B-32"
    assert BackboneConfig(kind="spectral").arch == "v1"


def test_same_seed_same_features_other_seed_differs(tiny_clip: str, images: torch.Tensor) -> None:
    for params in (RESNET18, _clip(tiny_clip)):
        first = _features(build_extractor(params), images)
        again = _features(build_extractor(params), images)
        other = _features(build_extractor({**params, "seed": 1}), images)
        torch.testing.assert_close(first, again, rtol=0, atol=0)
        assert not torch.allclose(first, other)


def test_building_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_extractor(RESNET18)
    torch.testing.assert_close(torch.rand(3), expected)


def test_extractor_stays_in_eval_mode() -> None:
    extractor = build_extractor(RESNET18)
    extractor.train()
    assert not any(m.training for m in extractor.modules())
    assert not any(p.requires_grad for p in extractor.parameters())


# ---------------------------------------------------------------------------- identity


def test_identity_is_json_and_complete(tiny_clip: str) -> None:
    identity = build_extractor(RESNET18).identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["kind"] == "resnet" and identity["arch"] == "resnet18"
    assert identity["weights"] == "none:seed=0"
    assert identity["feature_version"] == FEATURE_VERSION
    assert identity["feature_dim"] == 1024
    assert identity["preprocessing"]["image_size"] == 64
    assert identity["preprocessing"]["resize"] is None
    assert identity["preprocessing"]["normalisation"]["mean"] == pytest.approx(
        [0.485, 0.456, 0.406]
    )
    clip = build_extractor(_clip(tiny_clip)).identity()
    assert clip["preprocessing"]["normalisation"]["std"] == pytest.approx(
        [0.26862954, 0.26130258, 0.27577711]
    )


def test_identity_changes_exactly_with_what_changes_features(tiny_clip: str) -> None:
    base = build_extractor(RESNET18).identity()
    changed = [
        {"arch": "resnet34"},
        {"seed": 1},
        {"image_size": 96},
        {"resize": 80},
        {"early_stats": False},
    ]
    for change in changed:
        assert build_extractor({**RESNET18, **change}).identity() != base, change
    # Only how long to wait for a hub: no effect on features.
    assert build_extractor({**RESNET18, "hub_timeout_s": 1.0}).identity() == base

    clip = build_extractor(_clip(tiny_clip)).identity()
    assert build_extractor(_clip(tiny_clip, seed=1)).identity() != clip
    assert build_extractor(_clip(tiny_clip, image_size=48)).identity() != clip

    spectral = build_extractor({"kind": "spectral", "image_size": 64}).identity()
    # Weight-free: the seed does not change spectral features, so not their identity.
    assert build_extractor({"kind": "spectral", "image_size": 64, "seed": 5}).identity() == spectral
    assert build_extractor({"kind": "spectral", "image_size": 96}).identity() != spectral


# ------------------------------------------------------------------------ weight files


def test_resnet_weights_from_local_file(tmp_path: Path, images: torch.Tensor) -> None:
    source = build_extractor({**RESNET18, "seed": 7})
    # The same weights as a user's torchvision model has them (the extractor folds its
    # BatchNorms into the convolutions after loading).
    plain = {k: v for k, v in torchvision_state("resnet18", 7).items() if not k.startswith("fc.")}
    # A training checkpoint as DataParallel saves it: nested and "module."-prefixed.
    state = {f"module.{k}": v for k, v in plain.items()}
    state.update({"module.fc.weight": torch.zeros(2, 512), "module.fc.bias": torch.zeros(2)})
    path = tmp_path / "resnet18_finetuned.pth"
    torch.save({"epoch": 3, "state_dict": state}, path)

    loaded = build_extractor({**RESNET18, "weights": str(path)})
    torch.testing.assert_close(_features(loaded, images), _features(source, images))
    identity = loaded.identity()
    assert identity["weights"].startswith("file:") and len(identity["weights"]) == 5 + 64
    # Same file content elsewhere: same features, same identity.
    copy = tmp_path / "copy.pth"
    copy.write_bytes(path.read_bytes())
    assert build_extractor({**RESNET18, "weights": str(copy)}).identity() == identity
    # A backbone saved without its head, or with a fine-tuned 2-class head, loads too.
    headless = tmp_path / "headless.safetensors"
    from safetensors.torch import save_file

    save_file(plain, headless)
    loaded = build_extractor({**RESNET18, "weights": str(headless)})
    torch.testing.assert_close(_features(loaded, images), _features(source, images))


def test_frozen_resnet_folds_batch_norm_into_the_convolutions(
    tmp_path: Path, images: torch.Tensor
) -> None:
    # Weights with non-trivial BatchNorm statistics, as a trained network has them.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        net = torchvision.models.get_model("resnet18", weights=None)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.1, 0.1)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)

    frozen = build_extractor({**RESNET18, "weights": str(path)})
    finetune = build_extractor({**RESNET18, "weights": str(path), "train_mode": "finetune"})
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in finetune.modules()) == 20
    # The same function: the fine-tune branch keeps its BatchNorms (their weights train).
    torch.testing.assert_close(
        _features(frozen, images), _features(finetune, images), rtol=1e-4, atol=1e-4
    )
    assert frozen.weights_id == finetune.weights_id == f"file:{file_sha256(path)}"


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_early_stats_are_the_per_channel_mean_and_std(
    memory_format: torch.memory_format, dtype: torch.dtype
) -> None:
    # Activations with an offset much larger than their spread: a one-pass E[x^2] - E[x]^2
    # would lose the std here; the two-pass statistic must match torch.std_mean.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, 9, generator=generator) * torch.linspace(0.1, 2.0, 5)[:, None, None]
    x = (x + 40.0).to(dtype).contiguous(memory_format=memory_format)
    std, mean = torch.std_mean(x.float(), dim=(2, 3), correction=0)
    stats = _mean_std(x)
    assert stats.dtype == torch.float32 and stats.shape == (3, 10)
    torch.testing.assert_close(stats, torch.cat([mean, std], dim=1), rtol=1e-5, atol=1e-5)


def test_mismatched_weights_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "resnet34_weights.pt"
    torch.save(build_extractor({**RESNET18, "arch": "resnet34"}).net.state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet34_weights\.pt.*does not match") as info:
        build_extractor({**RESNET18, "weights": str(path)})
    assert "feature_extraction.backbones.resnet.weights" in str(info.value)


def test_unreadable_weights_file_names_file_and_parameter(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"backbones\.resnet\.weights: cannot read .*notes\.pt"):
        build_extractor({**RESNET18, "weights": str(path)})


def test_missing_weights_file_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"backbones\.resnet\.weights.*nope\.pth"):
        build_extractor({**RESNET18, "weights": str(tmp_path / "nope.pth")})


def test_clip_weights_from_local_file(tiny_clip: str, tmp_path: Path, images: torch.Tensor) -> None:
    import open_clip

    with torch.random.fork_rng():
        torch.manual_seed(11)
        model = open_clip.create_model(tiny_clip, force_image_size=64)
    path = tmp_path / "tiny_clip.pt"
    torch.save(model.state_dict(), path)  # a full CLIP state dict, text tower included

    loaded = build_extractor(_clip(tiny_clip, weights=str(path)))
    with torch.inference_mode():
        expected = F.normalize(model.encode_image(_clip_input(images)), dim=-1)
    torch.testing.assert_close(_features(loaded, images), expected, atol=1e-5, rtol=1e-4)


def _clip_input(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


# ------------------------------------------------------------------------------ errors


def test_bad_resnet_arch_lists_the_allowed_ones() -> None:
    with pytest.raises(
        ValueError, match=r"backbones\.resnet.*resnet18, resnet34, resnet50, resnet101, resnet152"
    ):
        build_extractor({"kind": "resnet", "arch": "resnet51"})


def test_bad_clip_arch_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"ViT-B-33.*allowed:.*ViT-B-32"):
        BackboneConfig(kind="clip", arch="ViT-B-33")


def test_bad_tags_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"IMAGENET1K_V3.*IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"):
        build_extractor({"kind": "resnet", "weights": "IMAGENET1K_V3"})
    with pytest.raises(ValueError, match=r"backbones\.clip.*'opanai'.*openai, laion400m_e31"):
        build_extractor({"kind": "clip", "weights": "opanai"})


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="image_sise"):
        build_extractor({"kind": "resnet", "image_sise": 224}, param_key="fe.backbones.resnet")
    with pytest.raises(ValueError, match="resize"):
        BackboneConfig(kind="resnet", image_size=224, resize=128)
    with pytest.raises(ValueError, match="no weights"):
        BackboneConfig(kind="spectral", weights="openai")


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_resnet_bf16_channels_last_matches_fp32(arch: str, images: torch.Tensor) -> None:
    _assert_bf16_close(build_extractor({**RESNET18, "arch": arch}), images)


def test_clip_bf16_channels_last_matches_fp32(tiny_clip: str, images: torch.Tensor) -> None:
    _assert_bf16_close(build_extractor(_clip(tiny_clip)), images)


def _assert_bf16_close(extractor: FeatureExtractor, images: torch.Tensor) -> None:
    reference = _features(extractor, images)
    extractor.to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = extractor(images.contiguous(memory_format=torch.channels_last))
    assert low.dtype == torch.float32
    assert F.cosine_similarity(low, reference).min() >= 0.999


# ------------------------------------------------------------------------ preprocessing


def test_preprocess_without_resize_is_an_untouched_crop() -> None:
    pixels = scene(96, seed=3)
    out = preprocess_image(Image.fromarray(pixels), 64)
    assert out.dtype == torch.uint8 and out.shape == (3, 64, 64)
    # (96 - 64) / 2 = 16: on the 16 px grid, so exactly the centre crop.
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), pixels[16:80, 16:80])


def test_preprocess_crop_keeps_the_jpeg_grid() -> None:
    pixels = scene(100, seed=4)  # (100 - 64) / 2 = 18 -> offset 16, a multiple of 8 and 16
    out = preprocess_image(Image.fromarray(pixels), 64)
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), pixels[16:80, 16:80])


def test_preprocess_pads_small_images_by_reflection() -> None:
    pixels = scene(40, seed=5)
    out = preprocess_image(Image.fromarray(pixels), 64).permute(1, 2, 0).numpy()
    expected = np.pad(pixels, ((12, 12), (12, 12), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(out, expected)
    tiny = preprocess_image(Image.fromarray(pixels[:5, :3]), 32)  # pads beyond the image side
    assert tiny.shape == (3, 32, 32)


def test_preprocess_resize_and_modes() -> None:
    wide = Image.fromarray(scene(64, seed=6)).resize((128, 64))
    out = preprocess_image(wide, 64, resize=80)  # shorter side 64 -> 80, then crop 64
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8
    grey = Image.fromarray(scene(64, seed=6)[..., 0]).convert("L")
    assert preprocess_image(grey, 32).shape == (3, 32, 32)
    rgba = Image.fromarray(scene(64, seed=6)).convert("RGBA")
    assert preprocess_image(rgba, 32).shape == (3, 32, 32)


def test_preprocess_is_light_to_send_to_workers() -> None:
    extractor = build_extractor(RESNET18)
    preprocess = pickle.loads(pickle.dumps(extractor.preprocess))
    assert len(pickle.dumps(extractor.preprocess)) < 1000  # geometry only, not the weights
    image = Image.fromarray(scene(80, seed=1))
    torch.testing.assert_close(preprocess(image), extractor.preprocess(image))
