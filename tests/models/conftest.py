"""Fixtures for the backbone tests: a tiny registered CLIP, small images, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

TINY_CLIP = "tiny-test-ViT"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 1, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a tiny CLIP config with open_clip (ViT width 64, 2 layers, patch 16); its name."""
    import open_clip

    path = tmp_path_factory.mktemp("open_clip_configs") / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return TINY_CLIP


@pytest.fixture(autouse=True)
def isolated_hub_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch.hub and Hugging Face caches, so no test depends on this machine's downloads."""
    import huggingface_hub.constants as hf_constants

    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # open_clip's ~/.cache/clip
    yield tmp_path
    torch.hub.set_dir(previous)
