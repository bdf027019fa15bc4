"""Hub weights: cached files load without the network; otherwise fail fast and say how to fix it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import torch
from backbone_helpers import batch, scene, torchvision_state

from deepfake_kedro.models import WeightsUnavailableError, build_extractor, weights
from deepfake_kedro.models.weights import probe_host

RESNET_KEY = "feature_extraction.backbones.resnet"
CLIP_KEY = "feature_extraction.backbones.clip"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _no_network(*args, **kwargs):
    raise AssertionError("the network must not be touched when the weights are cached")


@pytest.mark.parametrize(
    ("params", "key", "url_part"),
    [
        ({"kind": "resnet", "weights": "IMAGENET1K_V2"}, RESNET_KEY, "download.pytorch.org"),
        ({"kind": "clip", "weights": "openai"}, CLIP_KEY, "huggingface.co"),
    ],
)
def test_offline_hub_fails_fast_and_names_the_parameter(
    params: dict, key: str, url_part: str
) -> None:
    host = url_part
    if probe_host(host, 443, 3.0) is None:
        pytest.skip(f"{host} is reachable here: this test is about machines without a route")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        build_extractor(params)
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert f"{key}.weights" in message and repr(params["weights"]) in message
    assert url_part in message and "'none'" in message and "local file path" in message


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"kind": "resnet", "arch": "resnet18", "weights": "IMAGENET1K_V1"}, RESNET_KEY),
        ({"kind": "clip", "weights": "laion2b_s34b_b79k"}, CLIP_KEY),
    ],
)
def test_unreachable_host_fails_within_the_timeout(
    params: dict, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setattr(weights, "hub_address", lambda url: ("127.0.0.1", port))
    start = time.monotonic()
    with pytest.raises(
        WeightsUnavailableError, match=rf"{key}\.weights.*cannot connect to 127\.0\.0\.1:{port}"
    ):
        build_extractor({**params, "hub_timeout_s": 2.0})
    assert time.monotonic() - start < 5


def test_hanging_dns_cannot_block_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_getaddrinfo(*args, **kwargs):
        time.sleep(3)
        raise OSError("too late")

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    start = time.monotonic()
    reason = probe_host("example.invalid", 443, 0.3)
    assert time.monotonic() - start < 1.5
    assert reason is not None and "DNS" in reason


def test_cached_torchvision_weights_load_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"kind": "resnet", "arch": "resnet18", "image_size": 64}
    source = build_extractor({**params, "seed": 3})
    state = {
        **torchvision_state("resnet18", 3),
        "fc.weight": torch.zeros(1000, 512),
        "fc.bias": torch.zeros(1000),
    }
    checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth"
    checkpoint.parent.mkdir(parents=True)
    torch.save(state, checkpoint)
    monkeypatch.setattr(weights, "probe_host", _no_network)

    cached = build_extractor({**params, "weights": "DEFAULT"})
    images = batch(scene(64, 0), scene(64, 1))
    with torch.inference_mode():
        torch.testing.assert_close(cached(images), source(images))
    # DEFAULT is an alias: the identity records the weights it stands for.
    assert cached.identity()["weights"] == "IMAGENET1K_V1"
    assert build_extractor({**params, "weights": "IMAGENET1K_V1"}).identity() == cached.identity()


def test_cached_open_clip_tag_loads_without_network(
    tiny_clip: str, isolated_hub_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hf_constants
    import open_clip
    from open_clip import pretrained as oc_pretrained
    from open_clip.transformer import QuickGELU

    monkeypatch.setitem(
        oc_pretrained._PRETRAINED,
        tiny_clip,
        {
            "test": oc_pretrained._pcfg(
                hf_hub="test-org/tiny-clip/", quick_gelu=True, mean=(0.5,) * 3, std=(0.5,) * 3
            )
        },
    )
    with torch.random.fork_rng():
        torch.manual_seed(5)
        model = open_clip.create_model(tiny_clip)
    # A Hugging Face cache entry as huggingface_hub lays it out.
    repo = Path(hf_constants.HF_HUB_CACHE) / "models--test-org--tiny-clip"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save(model.state_dict(), repo / "snapshots" / commit / "open_clip_pytorch_model.bin")
    monkeypatch.setattr(weights, "probe_host", _no_network)

    extractor = build_extractor(
        {"kind": "clip", "arch": tiny_clip, "weights": "test", "image_size": 32}
    )
    identity = extractor.identity()
    assert identity["weights"] == "test"
    assert identity["preprocessing"]["normalisation"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    # The tag was trained with QuickGELU; open_clip alone would only warn.
    assert any(isinstance(m, QuickGELU) for m in extractor.modules())
    torch.testing.assert_close(
        extractor.visual.conv1.weight, model.visual.conv1.weight, rtol=0, atol=0
    )
