"""Where backbone weights come from: local files, hub caches, or a download that fails fast.

A missing download must never hang a run. Before torchvision or open_clip is asked to
download anything, the local cache is checked; if the weights are not there the hub's host
is probed (DNS in a thread, then a TCP connect) within ``hub_timeout_s``. An unreachable
host raises :class:`WeightsUnavailableError` naming the parameter and the two fixes (a
local file, or ``none``). A reachable host goes through the library's own download path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
WEIGHT_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "module")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (offline, host unreachable)."""


# ------------------------------------------------------------------------- weight specs


def is_weights_file(weights: str) -> bool:
    """Whether a ``weights`` value names a local file rather than ``none`` or a hub tag.

    Tags are bare identifiers (``IMAGENET1K_V2``, ``openai``); anything with a path
    separator, a home/relative prefix or a weights-file suffix, or that exists on disk,
    is a path.
    """
    if weights == "none":
        return False
    return (
        "/" in weights
        or "\\" in weights
        or weights.startswith(("~", "."))
        or weights.lower().endswith(WEIGHT_FILE_SUFFIXES)
        or os.path.exists(weights)
    )


def resolve_weights_file(weights: str, param_key: str) -> Path:
    """Expand and check a local weights path.

    Raises:
        FileNotFoundError: The file does not exist; the message names the parameter.
    """
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{param_key}.weights: weights file {str(path)!r} does not exist. Set it to an "
            "existing state-dict file, a hub tag, or 'none' (random init, offline)."
        )
    return path


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed (weights files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict_file(
    path: str | os.PathLike[str], param_key: str = "weights"
) -> dict[str, torch.Tensor]:
    """Read a state dict from a raw state dict or a training checkpoint.

    Accepts ``.safetensors`` files, a raw ``{name: tensor}`` mapping, or a checkpoint dict
    holding one under ``state_dict`` / ``model`` / ``model_state_dict`` / ``module``.
    ``module.`` prefixes (DataParallel / DDP) are stripped.

    Raises:
        ValueError: The file cannot be read or holds no state dict; the message names it.
    """
    path = str(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(path, device="cpu")
        else:
            # weights_only: a weights file from elsewhere must not be able to run code.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # HTTP, checksum, proxy and offline errors alike  # corrupt file, pickled objects, wrong format
        raise ValueError(
            f"{param_key}.weights: cannot read {path!r} as a state dict "
            f"({type(err).__name__}: {err}). Save the weights with "
            "torch.save(model.state_dict(), path) or safetensors."
        ) from err
    if isinstance(obj, dict):
        for key in _STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise ValueError(
            f"{param_key}.weights: {path!r} holds no state dict (expected {{name: tensor}} "
            f"or a checkpoint dict with one under {', '.join(_STATE_DICT_KEYS)})."
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_strict(
    module: torch.nn.Module,
    state_dict: dict[str, torch.Tensor],
    path: str | os.PathLike[str],
    param_key: str,
) -> None:
    """``module.load_state_dict(strict=True)`` with an error that names the file and the fix."""
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{param_key}.weights: {str(path)!r} does not match the configured architecture "
            f"({type(module).__name__}; check {param_key}.arch). {err}"
        ) from err


# ------------------------------------------------------------------------------ probing


def probe_host(host: str, port: int, timeout_s: float) -> str | None:
    """Check that a TCP connection to ``host:port`` opens within ``timeout_s``.

    The DNS lookup runs in a daemon thread because ``getaddrinfo`` cannot be interrupted
    and a broken resolver can block for far longer than the timeout.

    Returns:
        None when reachable, else a short reason.
    """
    deadline = time.monotonic() + timeout_s
    result: dict[str, Any] = {}

    def resolve() -> None:
        try:
            result["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            result["error"] = err

    thread = threading.Thread(target=resolve, name=f"probe-dns-{host}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return f"DNS lookup of {host} did not answer within {timeout_s:g} s"
    if "error" in result:
        return f"cannot resolve {host} ({result['error']})"
    last_error: OSError | None = None
    for family, sock_type, proto, _, address in result["addrs"]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with socket.socket(family, sock_type, proto) as sock:
                sock.settimeout(remaining)
                sock.connect(address)
            return None
        except OSError as err:
            last_error = err
    return f"cannot connect to {host}:{port} within {timeout_s:g} s ({last_error or 'timed out'})"


def hub_address(url: str) -> tuple[str, int]:
    """The ``(host, port)`` a download of ``url`` connects to first (its proxy, if any).

    Tests replace this to point at a closed local port.
    """
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    # urllib, requests and httpx all honour *_PROXY / NO_PROXY: probe what they will dial.
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return proxied.hostname or host, proxied.port or (443 if proxied.scheme == "https" else 80)
    return host, port


def ensure_reachable(url: str, *, param_key: str, tag: str, timeout_s: float, hint: str) -> None:
    """Raise :class:`WeightsUnavailableError` unless the host serving ``url`` answers.

    Args:
        url: What the library would download.
        param_key: Parameter that chose the weights (``...backbones.resnet``).
        tag: The configured weights tag.
        timeout_s: Budget for DNS plus connect.
        hint: Extra advice appended to the message.
    """
    host, port = hub_address(url)
    reason = probe_host(host, port, timeout_s)
    if reason is not None:
        raise WeightsUnavailableError(_unavailable_message(param_key, tag, url, reason, hint))
    logger.info("%s.weights=%s: %s:%d reachable, downloading %s", param_key, tag, host, port, url)


def _unavailable_message(param_key: str, tag: str, url: str, reason: str, hint: str = "") -> str:
    return (
        f"{param_key}.weights={tag!r}: the weights are not in the local cache and cannot be "
        f"downloaded: {reason}. Fix: download {url} on a machine with access and set "
        f"{param_key}.weights to the local file path, or set {param_key}.weights to 'none' "
        f"(random init, offline).{(' ' + hint) if hint else ''}"
    )


def guard_download(fn: Callable[[], Any], *, param_key: str, tag: str, url: str) -> Any:
    """Run a library download; any failure becomes a :class:`WeightsUnavailableError`."""
    try:
        return fn()
    except WeightsUnavailableError:
        raise
    except Exception as err:
        raise WeightsUnavailableError(
            _unavailable_message(
                param_key, tag, url, f"download failed ({type(err).__name__}: {err})"
            )
        ) from err


# ------------------------------------------------------------------------- torchvision


def torchvision_weights(arch: str, tag: str) -> Any:
    """The torchvision ``WeightsEnum`` member for ``tag`` (``DEFAULT`` resolves to its target).

    Raises:
        ValueError: Unknown tag; the message lists the valid ones.
    """
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    try:
        return enum[tag]
    except KeyError:
        valid = ", ".join(enum.__members__)
        raise ValueError(
            f"weights {tag!r} is not a torchvision tag for {arch}; valid tags: {valid}, "
            "'none', or a local file path."
        ) from None


def torchvision_cached_path(weights: Any) -> Path:
    """Where ``torch.hub`` keeps (or would keep) the checkpoint of a torchvision weights enum."""
    filename = os.path.basename(urllib.parse.urlsplit(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def torchvision_pretrained(
    arch: str, tag: str, *, param_key: str, timeout_s: float
) -> tuple[torch.nn.Module, str]:
    """Build a torchvision model with hub weights, failing fast when they cannot be had.

    Uses the cached checkpoint when torch.hub has it; otherwise probes the host and, if it
    answers, lets torchvision download it the usual way (with its hash check).

    Returns:
        ``(model, resolved_tag)``; ``DEFAULT`` resolves to the tag it stands for.

    Raises:
        ValueError: Unknown tag (lists the valid ones).
        WeightsUnavailableError: Not cached and the host is unreachable or the download fails.
    """
    from torchvision.models import get_model

    weights = torchvision_weights(arch, tag)
    cached = torchvision_cached_path(weights)
    if cached.is_file():
        logger.info("%s.weights=%s: using cached %s", param_key, tag, cached)
        return get_model(arch, weights=weights), weights.name
    ensure_reachable(
        weights.url,
        param_key=param_key,
        tag=tag,
        timeout_s=timeout_s,
        hint=f"torchvision looks for it at {cached}.",
    )
    model = guard_download(
        lambda: get_model(arch, weights=weights), param_key=param_key, tag=tag, url=weights.url
    )
    return model, weights.name


# ---------------------------------------------------------------------------- open_clip


@dataclass(frozen=True)
class OpenClipPretrained:
    """A resolved open_clip pretrained tag: a local checkpoint and how the tag was trained."""

    tag: str
    checkpoint: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    quick_gelu: bool


def open_clip_tags(arch: str) -> list[str]:
    """The pretrained tags open_clip knows for ``arch``."""
    import open_clip

    return list(open_clip.list_pretrained_tags_by_model(arch))


def check_open_clip_tag(arch: str, tag: str) -> None:
    """Raise ValueError listing the valid tags unless ``tag`` is one for ``arch``."""
    tags = open_clip_tags(arch)
    if tag not in tags:
        listed = ", ".join(tags) if tags else "(none: open_clip has no pretrained weights for it)"
        raise ValueError(
            f"weights {tag!r} is not an open_clip pretrained tag for {arch}; valid tags: "
            f"{listed}; or 'none', or a local file path."
        )


def _hf_cached_file(repo_id: str, filenames: list[str]) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def fetch_open_clip_checkpoint(
    arch: str, tag: str, *, param_key: str, timeout_s: float
) -> OpenClipPretrained:
    """Resolve an open_clip tag to a local checkpoint, downloading only if the host answers.

    Mirrors ``open_clip.pretrained.download_pretrained``: the Hugging Face copy is
    preferred when ``huggingface_hub`` is installed, else the tag's URL.

    Raises:
        ValueError: Unknown tag (lists the valid ones).
        WeightsUnavailableError: Not cached and the host is unreachable or the download fails.
    """
    import open_clip
    from open_clip import pretrained as oc_pretrained

    check_open_clip_tag(arch, tag)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    resolved = dict(
        tag=tag,
        mean=tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        quick_gelu=bool(cfg.get("quick_gelu", False)),
    )
    if "file" in cfg:
        return OpenClipPretrained(checkpoint=cfg["file"], **resolved)
    file_note = _local_file_note(arch, resolved, param_key)

    hf_hub = cfg.get("hf_hub", "")
    if hf_hub and oc_pretrained.has_hf_hub():
        from huggingface_hub import constants as hf_constants

        # Same convention as open_clip: "org/repo/" means the default file name.
        repo_id, filename = os.path.split(hf_hub)
        filename = filename or oc_pretrained.HF_WEIGHTS_NAME
        candidates = [*oc_pretrained._get_safe_alternatives(filename), filename]
        url = f"{hf_constants.ENDPOINT}/{repo_id}/resolve/main/{filename}"
        cached = _hf_cached_file(repo_id, candidates)
        if cached is None:
            if hf_constants.HF_HUB_OFFLINE:
                raise WeightsUnavailableError(
                    _unavailable_message(
                        param_key, tag, url, "HF_HUB_OFFLINE is set and the file is not cached"
                    )
                )
            ensure_reachable(
                url,
                param_key=param_key,
                tag=tag,
                timeout_s=timeout_s,
                hint=f"{file_note}Or put it in the Hugging Face cache "
                f"({hf_constants.HF_HUB_CACHE}) and keep the tag.",
            )
    else:
        url = cfg.get("url", "")
        if not url:
            raise WeightsUnavailableError(
                _unavailable_message(
                    param_key,
                    tag,
                    "(no source)",
                    "open_clip lists no download source usable without huggingface_hub",
                )
            )
        cache_file = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        cached = str(cache_file) if cache_file.is_file() else None
        if cached is None:
            ensure_reachable(
                url,
                param_key=param_key,
                tag=tag,
                timeout_s=timeout_s,
                hint=f"{file_note}Or put it at {cache_file} and keep the tag.",
            )
    if cached is not None:
        logger.info("%s.weights=%s: using cached %s", param_key, tag, cached)
        return OpenClipPretrained(checkpoint=cached, **resolved)
    # The real open_clip download path (HF hub or URL, with its checksum checks).
    checkpoint = guard_download(
        lambda: oc_pretrained.download_pretrained(cfg), param_key=param_key, tag=tag, url=url
    )
    return OpenClipPretrained(checkpoint=str(checkpoint), **resolved)


def _local_file_note(arch: str, resolved: dict[str, Any], param_key: str) -> str:
    """What a local copy of a tag's weights cannot carry (activation, normalisation)."""
    import open_clip

    notes = []
    if resolved["quick_gelu"]:
        quick = f"{arch}-quickgelu"
        if quick in open_clip.list_models() or arch.endswith("-quickgelu"):
            target = arch if arch.endswith("-quickgelu") else quick
            notes.append(f"these weights use QuickGELU: also set {param_key}.arch to {target!r}.")
        else:
            notes.append("these weights use QuickGELU, which a local file cannot convey.")
    if tuple(resolved["mean"]) != tuple(open_clip.OPENAI_DATASET_MEAN):
        notes.append(
            f"they expect mean {list(resolved['mean'])} / std {list(resolved['std'])}, "
            "which a local file cannot convey (it gets the OpenAI constants)."
        )
    return ("With a local file: " + " ".join(notes) + " ") if notes else ""


def ensure_hf_text_config(hf_model_name: str, *, param_key: str, timeout_s: float) -> None:
    """Fail fast if building a CLIP arch with a Hugging Face text tower would need a download.

    open_clip builds such text towers from ``AutoConfig.from_pretrained``, a download even
    for random weights; we only use the image tower but open_clip builds both.
    """
    if _hf_cached_file(hf_model_name, ["config.json"]) is not None:
        return
    from huggingface_hub import constants as hf_constants

    url = f"{hf_constants.ENDPOINT}/{hf_model_name}/resolve/main/config.json"
    host, port = hub_address(url)
    reason = probe_host(host, port, timeout_s)
    if reason is not None:
        raise WeightsUnavailableError(
            f"{param_key}.arch: this open_clip model's text tower needs the Hugging Face config "
            f"{url}, which is not cached and cannot be downloaded: {reason}. Fix: choose an "
            f"open_clip arch with a built-in text tower (e.g. ViT-B-32, ViT-B-16, RN50), or "
            f"cache that config on this machine."
        )
