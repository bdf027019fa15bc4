"""Feature-extractor backbones (torchvision ResNet, open_clip CLIP, spectral) and their preprocessing.

Each extractor splits its work in two so that data loading and the network can run apart:

- :meth:`FeatureExtractor.preprocess` is geometric only (RGB, optional resize, centre crop
  to a uint8 tensor); it runs in DataLoader workers.
- :meth:`FeatureExtractor.forward` takes the uint8 batch on the module's device, normalises
  there and returns float32 features.

:meth:`FeatureExtractor.identity` describes everything that determines the features; the
feature cache is keyed by its hash. The same code serves training and the registered
inference model, so preprocessing cannot drift between them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pydantic
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from deepfake_kedro.models import spectral
from deepfake_kedro.models.weights import (
    TORCHVISION_RESNETS,
    WeightsUnavailableError,
    check_open_clip_tag,
    ensure_hf_text_config,
    fetch_open_clip_checkpoint,
    file_sha256,
    is_weights_file,
    load_state_dict_file,
    load_strict,
    resolve_weights_file,
    torchvision_pretrained,
    torchvision_weights,
)

logger = logging.getLogger(__name__)

FEATURE_VERSION = 1
"""Bump whenever preprocessing or ResNet/CLIP feature code changes what features come out."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_GRID = 16
"""Without resize the crop offset is a multiple of 16 px (a JPEG MCU with 4:2:0 chroma), so the
crop keeps the image's JPEG block grid and the phase of 2x/4x up-sampling."""

__all__ = [
    "BackboneConfig",
    "ClipExtractor",
    "FEATURE_VERSION",
    "FeatureExtractor",
    "ImagePreprocessor",
    "ResNetExtractor",
    "SpectralExtractor",
    "WeightsUnavailableError",
    "build_extractor",
    "extractor_class",
    "is_trainable",
    "preprocess_image",
    "state_digest",
]


class BackboneConfig(BaseModel):
    """Parameters of one backbone (``feature_extraction.backbones.<branch>``).

    The keys of ``feature_extraction.backbones`` are the project's branches; each entry
    says which extractor ``kind`` computes that branch's features.

    Attributes:
        kind: A built-in extractor (``resnet`` | ``clip`` | ``spectral``) or the import path
            of a :class:`FeatureExtractor` subclass, ``package.module:ClassName``: a new
            frozen backbone is a module plus a parameters entry.
        arch: resnet18/34/50/101/152; any open_clip model name; ``v1`` for spectral.
            Defaults to the kind's ``default_arch``.
        weights: ``none`` (seeded random init), a hub tag (torchvision ``IMAGENET1K_V1`` /
            ``IMAGENET1K_V2`` / ``DEFAULT``; open_clip tags such as ``openai``), or a local
            state-dict / checkpoint file.
        image_size: Side fed to the network.
        resize: Resize the shorter side to this (bicubic, antialiased) before the centre
            crop; None crops only, keeping pixel-level traces (reflect-pads small images).
        seed: Seed of the random init when ``weights`` is ``none``.
        early_stats: ResNet only: add per-channel mean and std of the stem, layer1 and
            layer2 activations.
        hub_timeout_s: Budget to reach a weights hub before failing.
        options: Settings of the kind (part of its feature identity), e.g. ``srm_cnn``'s.
        train_mode: ``frozen``: features are extracted once and cached, the fusion head
            trains on them. ``finetune``: the backbone learns from pixels inside
            ``ensemble_training``, end to end with the head, and its weights travel in the
            checkpoint (no feature cache). Default: the kind's (``srm_cnn``: finetune,
            the others: frozen).
        lr_scale: ``finetune`` only: this branch's learning rate as a multiple of
            ``ensemble_training.learning_rate``. None: the kind's default (0.1 for
            pretrained backbones, which a full learning rate would wreck; 1 for srm_cnn,
            trained from scratch).
        enabled: False leaves the branch out of every pipeline without deleting its entry
            (e.g. in conf/local).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    arch: str | None = None
    weights: str = "none"
    image_size: int = Field(224, ge=32, le=4096)
    resize: int | None = Field(None, ge=32, le=8192)
    seed: int = Field(0, ge=0)
    early_stats: bool = True
    hub_timeout_s: float = Field(5.0, gt=0, le=300)
    options: dict[str, Any] = Field(default_factory=dict)
    train_mode: Literal["frozen", "finetune"] = "frozen"
    lr_scale: float | None = Field(None, gt=0, le=10)
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("kind"):
            kind = extractor_class(str(data["kind"]))
            if data.get("arch") is None and kind.default_arch is not None:
                data = {**data, "arch": kind.default_arch}
            if data.get("train_mode") is None:
                data = {**data, "train_mode": kind.default_train_mode}
        return data

    @property
    def trainable(self) -> bool:
        """Whether the branch learns inside ``ensemble_training`` (``train_mode: finetune``)."""
        return self.train_mode == "finetune"

    @model_validator(mode="after")
    def _check_arch_and_weights(self) -> BackboneConfig:
        if self.resize is not None and self.resize < self.image_size:
            raise ValueError(
                f"resize ({self.resize}) must be >= image_size ({self.image_size}), or null to crop only"
            )
        extractor_class(self.kind).check_config(self)
        return self


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...] | list[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not supported; allowed: {', '.join(allowed)}")


# -------------------------------------------------------------------------- preprocessing


def preprocess_image(
    image: Image.Image, image_size: int, resize: int | None = None
) -> torch.Tensor:
    """Geometric preprocessing shared by every backbone.

    Args:
        image: Any PIL image (converted to RGB).
        image_size: Side of the output.
        resize: If set, resize the shorter side to this first (bicubic; PIL widens the
            kernel when down-scaling, i.e. antialiased). None keeps the pixels untouched.

    Returns:
        uint8 tensor ``[3, image_size, image_size]``. Without resize it is a centre crop of
        the input whose offset is rounded down to a multiple of 16 px (keeps the JPEG grid);
        sides smaller than ``image_size`` are reflect-padded.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    if resize is not None:
        w, h = image.size
        scale = resize / min(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if size != (w, h):
            image = image.resize(size, Image.Resampling.BICUBIC)
    array = np.asarray(image)
    grid = CROP_GRID if resize is None else 1
    for axis in (0, 1):
        n = array.shape[axis]
        if n >= image_size:
            start = (n - image_size) // 2 // grid * grid
            array = (
                array[start : start + image_size]
                if axis == 0
                else array[:, start : start + image_size]
            )
        else:
            before = (image_size - n) // 2
            pad = [(0, 0)] * 3
            pad[axis] = (before, image_size - n - before)
            # numpy reflects repeatedly when the pad exceeds the side, so tiny images work.
            array = np.pad(array, pad, mode="reflect" if n > 1 else "edge")
    # np.array copies: PIL's buffer is read-only, and the crop is a view into it.
    return torch.from_numpy(np.array(array, order="C")).permute(2, 0, 1).contiguous()


@dataclasses.dataclass(frozen=True)
class ImagePreprocessor:
    """Picklable :func:`preprocess_image` with fixed ``image_size`` and ``resize``."""

    image_size: int
    resize: int | None = None

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> uint8 ``[3, image_size, image_size]``."""
        return preprocess_image(image, self.image_size, self.resize)


# --------------------------------------------------------------------------- base class


class FeatureExtractor(nn.Module):
    """An image feature extractor: uint8 images in, float32 features out.

    Subclasses set ``feature_dim``, ``weights_id`` and ``normalisation`` and implement
    :meth:`features`. The module always stays in eval mode, also while a ``finetune``
    branch trains: BatchNorm keeps its running statistics (frozen BatchNorm, the usual
    choice when fine-tuning with small batches), so training and scoring compute the same
    function and a batch's score never depends on the other images in it.

    A trained branch (:meth:`mark_trained`, :meth:`load_trained`) has the digest of its
    weights in its identity and runs in float32 whatever the autocast around it: scoring
    reproduces the training run's own evaluation, which is float32.
    """

    feature_version: ClassVar[int] = FEATURE_VERSION
    default_arch: ClassVar[str | None] = None
    """``arch`` when the parameters leave it out."""
    default_train_mode: ClassVar[str] = "frozen"
    """``train_mode`` when the parameters leave it out."""
    default_lr_scale: ClassVar[float] = 0.1
    """``lr_scale`` of a ``finetune`` branch when the parameters leave it out."""

    def __init__(self, config: BackboneConfig, param_key: str = "") -> None:
        super().__init__()
        self.config = config
        self.feature_dim: int = 0
        self.weights_id: str = "none"
        self.normalisation: dict[str, list[float]] | None = None
        self.initial_weights_id: str | None = None
        self.full_precision = False

    @property
    def preprocess(self) -> ImagePreprocessor:
        """``preprocess(image)``: RGB, optional resize, centre crop -> uint8 ``[3, S, S]``.

        A small picklable callable rather than a bound method, so DataLoader workers
        receive the geometry only, never the network's weights.
        """
        return ImagePreprocessor(self.config.image_size, self.config.resize)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch.

        Args:
            images: uint8 (or float in 0..255) ``[B, 3, H, W]`` on the module's device.

        Returns:
            float32 ``[B, feature_dim]``.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
        if self.full_precision:
            with torch.autocast(device_type=images.device.type, enabled=False):
                return self.features(images).float()
        return self.features(images).float()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone-specific features of a validated ``[B, 3, H, W]`` batch."""
        raise NotImplementedError

    @classmethod
    def check_config(cls, config: BackboneConfig) -> None:
        """Refuse parameters this kind cannot honour (``ValueError`` naming the allowed
        values), before any network is built. The base class accepts any."""

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode: features must not depend on batch statistics or dropout."""
        return super().train(False)

    @property
    def trainable(self) -> bool:
        """Whether this branch learns inside ``ensemble_training`` (``train_mode: finetune``)."""
        return self.config.trainable

    @property
    def lr_scale(self) -> float:
        """Learning-rate multiple of this branch's weights when it trains."""
        return self.config.lr_scale if self.config.lr_scale is not None else self.default_lr_scale

    @property
    def train_crop(self) -> int | None:
        """Side of the random training crops of the preprocessed image (None: the whole
        image). Only for networks that accept any input size."""
        return None

    @property
    def augments(self) -> bool:
        """Whether training draws a fresh augmentation of each image at every epoch."""
        return True

    def trained_state(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the weights (state dict), as the checkpoint stores them."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.state_dict().items()}

    def mark_trained(self) -> FeatureExtractor:
        """Record that the weights are now the trained ones: the identity names their
        digest (features cached for them are theirs alone), gradients are off and scoring
        runs in float32. Returns self."""
        if self.initial_weights_id is None:
            self.initial_weights_id = self.weights_id
        self.weights_id = f"trained:{state_digest(self.state_dict())}"
        self.requires_grad_(False)
        self.full_precision = True
        return self

    def load_trained(
        self, state: Mapping[str, torch.Tensor], param_key: str = ""
    ) -> FeatureExtractor:
        """Load a checkpoint's trained weights (strictly) and :meth:`mark_trained`.

        Raises:
            ValueError: naming the branch when the weights do not fit the architecture.
        """
        try:
            self.load_state_dict(dict(state), strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"{param_key or self.config.kind}: the checkpoint's trained weights do not fit "
                f"this backbone ({str(err).splitlines()[0]}); the backbone's parameters changed "
                "since training: restore them or retrain"
            ) from err
        return self.mark_trained()

    def identity(self) -> dict[str, Any]:
        """Everything that determines the features, JSON-serialisable (the cache key hashes it)."""
        c = self.config
        trained = {}
        if c.trainable:  # frozen identities (the existing cache keys) stay as they were
            trained = {"train_mode": c.train_mode, "initial_weights": self.initial_weights_id}
        return {
            "kind": c.kind,
            "arch": c.arch,
            "weights": self.weights_id,
            "feature_version": self.feature_version,
            "feature_dim": self.feature_dim,
            "preprocessing": {
                "image_size": c.image_size,
                "resize": c.resize,
                "crop": f"centre, offset on a {CROP_GRID} px grid without resize, reflect pad",
                "normalisation": self.normalisation,
            },
            **self._identity_extra(),
            **trained,
        }

    def _identity_extra(self) -> dict[str, Any]:
        return {}

    def _set_normalisation(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        """Register mean/std (0..1 units) as buffers scaled to 0..255 input."""
        mean_t = torch.tensor([float(v) for v in mean]).view(1, 3, 1, 1)
        std_t = torch.tensor([float(v) for v in std]).view(1, 3, 1, 1)
        # Not persistent: the state dict stays the network's own and loads anywhere.
        self.register_buffer("pixel_mean", mean_t * 255.0, persistent=False)
        self.register_buffer("pixel_std", std_t * 255.0, persistent=False)
        self.normalisation = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        # float32 on device; .float() keeps channels_last.
        return (images.float() - self.pixel_mean) / self.pixel_std


class Float32Conv2d(nn.Conv2d):
    """A Conv2d that runs in float32 even under autocast.

    Used for the layer that reads the pixels: in bf16 a normalised pixel keeps 8
    significant bits, about one grey level near white, which is the scale of the traces
    a deepfake detector looks for. The layer is ~3% of the network's FLOPs.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # nn.Conv2d's name
        with torch.autocast(device_type=input.device.type, enabled=False):
            return super().forward(input.float())


def _pixels_in_float32(conv: nn.Module) -> None:
    """Make a plain Conv2d a :class:`Float32Conv2d` in place (same parameters and state dict)."""
    if type(conv) is nn.Conv2d:
        conv.__class__ = Float32Conv2d


def _weights_kind(config: BackboneConfig, param_key: str) -> tuple[str, Any]:
    """``("none", None)``, ``("file", Path)`` or ``("tag", tag)``."""
    if config.weights == "none":
        return "none", None
    if is_weights_file(config.weights):
        return "file", resolve_weights_file(config.weights, param_key)
    return "tag", config.weights


# ------------------------------------------------------------------------------ ResNet


class ResNetExtractor(FeatureExtractor):
    """torchvision ResNet: global-average-pooled last stage (+ early activation statistics)."""

    default_arch: ClassVar[str | None] = "resnet50"

    @classmethod
    def check_config(cls, config: BackboneConfig) -> None:
        _check_choice("arch", config.arch, TORCHVISION_RESNETS)
        if config.weights != "none" and not is_weights_file(config.weights):
            torchvision_weights(config.arch, config.weights)

    def __init__(self, config: BackboneConfig, param_key: str) -> None:
        super().__init__(config)
        import torchvision

        arch = config.arch
        kind, source = _weights_kind(config, param_key)
        # torchvision initialises randomly even when weights follow: keep the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if kind == "tag":
                net, self.weights_id = torchvision_pretrained(
                    arch, source, param_key=param_key, timeout_s=config.hub_timeout_s
                )
            else:
                net = torchvision.models.get_model(arch, weights=None)
        net.fc = nn.Identity()  # the classifier head is not a feature
        if kind == "file":
            # Strict on the feature layers; any head (1000 classes, a fine-tuned real/fake
            # head, or none) is ignored since it is not used.
            state = {
                k: v
                for k, v in load_state_dict_file(source, param_key).items()
                if not k.startswith("fc.")
            }
            load_strict(net, state, source, param_key)
            self.weights_id = f"file:{file_sha256(source)}"
        elif kind == "none":
            self.weights_id = f"none:seed={config.seed}"
        _pixels_in_float32(net.conv1)
        early = [net.bn1.num_features, _stage_channels(net.layer1), _stage_channels(net.layer2)]
        if not config.trainable:
            _fold_batch_norms(net)
        self.net = net
        self._set_normalisation(IMAGENET_MEAN, IMAGENET_STD)
        self.feature_dim = _stage_channels(net.layer4) + (
            2 * sum(early) if config.early_stats else 0
        )
        self.requires_grad_(False)
        self.eval()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = self._normalise(images)
        # The stages are called explicitly rather than through forward hooks: the early
        # statistics come from the same single pass, with no hook state between calls,
        # and torch.compile sees one graph.
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        stats = []
        if self.config.early_stats:
            stats.append(_mean_std(x))
        x = net.layer1(x)
        if self.config.early_stats:
            stats.append(_mean_std(x))
        x = net.layer2(x)
        if self.config.early_stats:
            stats.append(_mean_std(x))
        x = net.layer4(net.layer3(x))
        # Pool in float32 (as _mean_std does): under autocast the activations are bf16 and a
        # bf16 result would round every feature to 8 significant bits.
        pooled = x.float().mean(dim=(2, 3))
        return torch.cat([pooled, *stats], dim=1)

    def _identity_extra(self) -> dict[str, Any]:
        return {"early_stats": self.config.early_stats}


def _fold_batch_norms(net: nn.Module) -> None:
    """Fold every eval-mode BatchNorm of a torchvision ResNet into the convolution before it.

    A frozen backbone computes ``bn(conv(x))`` with fixed statistics, which is one
    convolution with scaled weights and a bias: the same function (float32 rounding apart:
    cosine 1 - 1e-7 on ResNet50) without 53 extra passes over the activations, about 17%
    faster on a CPU (``python -m benchmarks throughput``). Not for ``finetune`` branches,
    whose BatchNorm weights train.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(owner: nn.Module, conv: str, bn: str) -> None:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())

    net.eval()
    fold(net, "conv1", "bn1")  # a deep copy: the stem stays a Float32Conv2d
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in stage:
            for i in (1, 2, 3):
                if hasattr(block, f"conv{i}"):
                    fold(block, f"conv{i}", f"bn{i}")
            if block.downsample is not None:
                fold(block.downsample, "0", "1")


def _stage_channels(stage: nn.Sequential) -> int:
    block = stage[-1]
    return block.conv3.out_channels if hasattr(block, "conv3") else block.conv2.out_channels


def _mean_std(x: torch.Tensor) -> torch.Tensor:
    """Per-channel spatial mean and std of [B, C, H, W], in float32 -> [B, 2C].

    Two passes (mean, then mean squared deviation) over a [B, H*W, C] view: for channels_last
    activations the view is free and both reductions run over a contiguous channel axis.
    ``torch.std_mean`` over dims (2, 3) took 20% of a bf16 ResNet50 forward on a 2-core AMX
    CPU; this is the same statistic (float32 rounding apart) in about half the time.
    """
    b, c = x.shape[:2]
    y = x.permute(0, 2, 3, 1).reshape(b, -1, c).float()
    mean = y.mean(dim=1, keepdim=True)
    var = (y - mean).square_().mean(dim=1)
    return torch.cat([mean[:, 0], var.sqrt()], dim=1)


# -------------------------------------------------------------------------------- CLIP


class ClipExtractor(FeatureExtractor):
    """open_clip image tower: the L2-normalised image embedding (the text tower is dropped)."""

    default_arch: ClassVar[str | None] = "ViT-B-32"

    @classmethod
    def check_config(cls, config: BackboneConfig) -> None:
        import open_clip

        _check_choice("arch", config.arch, open_clip.list_models())
        if config.weights != "none" and not is_weights_file(config.weights):
            check_open_clip_tag(config.arch, config.weights)

    def __init__(self, config: BackboneConfig, param_key: str) -> None:
        super().__init__(config)
        import open_clip

        arch = config.arch
        model_cfg = open_clip.get_model_config(arch)
        hf_text = model_cfg.get("text_cfg", {}).get("hf_model_name")
        if hf_text:
            ensure_hf_text_config(hf_text, param_key=param_key, timeout_s=config.hub_timeout_s)
        default_size = model_cfg["vision_cfg"].get("image_size", 224)
        kwargs: dict[str, Any] = {
            "pretrained_image": False,  # never fetch timm/HF tower weights behind our back
            "pretrained_text": False,
        }
        if _as_pair(default_size) != (config.image_size, config.image_size):
            # Pretrained position embeddings are interpolated to the new grid by open_clip.
            kwargs["force_image_size"] = config.image_size

        kind, source = _weights_kind(config, param_key)
        if kind == "tag":
            resolved = fetch_open_clip_checkpoint(
                arch, source, param_key=param_key, timeout_s=config.hub_timeout_s
            )
            # open_clip 3 only warns when a tag trained with QuickGELU (all OpenAI
            # weights) meets a GELU config; the features would be silently off.
            kwargs["force_quick_gelu"] = resolved.quick_gelu
            kwargs["force_preprocess_cfg"] = {"mean": resolved.mean, "std": resolved.std}
            kwargs["pretrained"] = resolved.checkpoint
            self.weights_id = source
        elif kind == "file":
            self.weights_id = f"file:{file_sha256(source)}"
        else:
            self.weights_id = f"none:seed={config.seed}"

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = open_clip.create_model(arch, **kwargs)
        if kind == "file":
            _load_clip_visual(model, source, param_key)
        visual = model.visual
        # ViT patch embedding or ModifiedResNet stem; timm towers keep theirs.
        _pixels_in_float32(getattr(visual, "conv1", None))
        cfg = getattr(visual, "preprocess_cfg", {})
        mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        self.visual = visual
        self._set_normalisation(mean, std)
        self.feature_dim = int(model_cfg["embed_dim"])
        self.requires_grad_(False)
        self.eval()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        size = tuple(images.shape[-2:])
        if size != (self.config.image_size, self.config.image_size):
            raise ValueError(
                f"CLIP expects {self.config.image_size}x{self.config.image_size} images "
                f"(its position embeddings are fixed), got {size[0]}x{size[1]}; use preprocess()"
            )
        embedding = self.visual(self._normalise(images))
        if isinstance(embedding, tuple):  # towers configured to also return tokens
            embedding = embedding[0]
        return F.normalize(embedding.float(), dim=-1, eps=1e-6)


def _as_pair(size: Any) -> tuple[int, int]:
    return (
        (int(size[0]), int(size[1])) if isinstance(size, list | tuple) else (int(size), int(size))
    )


def _load_clip_visual(model: nn.Module, path: Any, param_key: str) -> None:
    """Load a CLIP checkpoint (full model or image tower only) strictly into the image tower."""
    from open_clip.model import resize_pos_embed

    state_dict = load_state_dict_file(path, param_key)
    if not any(k.startswith("visual.") for k in state_dict):
        state_dict = {f"visual.{k}": v for k, v in state_dict.items()}
    resize_pos_embed(state_dict, model)  # a checkpoint trained at another image size
    visual_sd = {
        k.removeprefix("visual."): v for k, v in state_dict.items() if k.startswith("visual.")
    }
    load_strict(model.visual, visual_sd, path, param_key)


# ---------------------------------------------------------------------------- spectral


class SpectralExtractor(FeatureExtractor):
    """Weight-free frequency, JPEG-grid and noise-residual features (:mod:`.spectral`)."""

    feature_version: ClassVar[int] = spectral.FEATURE_VERSION
    default_arch: ClassVar[str | None] = "v1"

    @classmethod
    def check_config(cls, config: BackboneConfig) -> None:
        _check_choice("arch", config.arch, ("v1",))
        if config.weights != "none":
            raise ValueError(
                f"spectral features have no weights; set weights to 'none' (got {config.weights!r})"
            )
        if config.trainable:
            raise ValueError(
                "spectral features have no weights to train: set train_mode to 'frozen'"
            )

    def __init__(self, config: BackboneConfig, param_key: str) -> None:
        super().__init__(config)
        if config.resize is not None:
            logger.warning(
                "%s.resize=%s: resampling erases the pixel-level traces spectral features read; "
                "null (crop only) is recommended",
                param_key,
                config.resize,
            )
        self.weights_id = "none"
        self.feature_dim = spectral.FEATURE_DIM
        self.eval()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return spectral.spectral_features(images)


# ------------------------------------------------------------------------------- build

_EXTRACTORS: dict[str, type[FeatureExtractor] | str] = {
    "resnet": ResNetExtractor,
    "clip": ClipExtractor,
    "spectral": SpectralExtractor,
    # Its own module (it builds on this one), imported when first named.
    "srm_cnn": "deepfake_kedro.models.pixel:SrmCnnExtractor",
}


def extractor_class(kind: str) -> type[FeatureExtractor]:
    """The extractor class of ``kind``: a built-in name or ``package.module:ClassName``.

    Raises:
        ValueError: naming the built-in kinds and the import-path form, when ``kind`` is
            neither, cannot be imported or is not a :class:`FeatureExtractor`.
    """
    builtin = _EXTRACTORS.get(kind)
    if isinstance(builtin, type):
        return builtin
    if builtin is not None:
        module_name, _, class_name = builtin.partition(":")
        _EXTRACTORS[kind] = getattr(importlib.import_module(module_name), class_name)
        return _EXTRACTORS[kind]  # type: ignore[return-value]
    hint = (
        f"use one of {', '.join(_EXTRACTORS)} or the import path of a FeatureExtractor "
        "subclass, 'package.module:ClassName'"
    )
    module_name, _, class_name = kind.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"kind {kind!r} is not a known backbone: {hint}")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"kind {kind!r} cannot be imported ({err}): {hint}") from err
    if not (isinstance(found, type) and issubclass(found, FeatureExtractor)):
        raise ValueError(f"kind {kind!r} is not a FeatureExtractor subclass: {hint}")
    return found


def is_trainable(config: BackboneConfig | Mapping[str, Any]) -> bool:
    """Whether a backbone entry learns inside ``ensemble_training`` (``train_mode: finetune``,
    explicit or the kind's default), without building or fully validating it."""
    if isinstance(config, BackboneConfig):
        return config.trainable
    mode = config.get("train_mode")
    if mode is None:
        mode = extractor_class(str(config.get("kind", ""))).default_train_mode
    return mode == "finetune"


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """A short sha256 of a state dict (names, dtypes, shapes and bytes), for identities."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def build_extractor(
    config: BackboneConfig | Mapping[str, Any],
    *,
    param_key: str | None = None,
) -> FeatureExtractor:
    """Build the feature extractor a config describes.

    Args:
        config: A :class:`BackboneConfig` or its parameters as a mapping.
        param_key: Where the parameters live, for error messages; default
            ``feature_extraction.backbones.<kind>`` (a branch named after its kind).

    Returns:
        The extractor, in eval mode on the CPU.

    Raises:
        ValueError: Invalid parameters, unknown arch or tag, or a weights file that does
            not match the architecture.
        FileNotFoundError: The weights file does not exist.
        WeightsUnavailableError: Hub weights are not cached and cannot be downloaded.
    """
    if not isinstance(config, BackboneConfig):
        kind = config.get("kind", "<kind>") if isinstance(config, Mapping) else "<kind>"
        key = param_key or f"feature_extraction.backbones.{kind}"
        try:
            config = BackboneConfig.model_validate(dict(config))
        except pydantic.ValidationError as err:
            raise ValueError(f"{key}: invalid backbone parameters: {short_errors(err)}") from err
    key = param_key or f"feature_extraction.backbones.{config.kind}"
    extractor = extractor_class(config.kind)(config, key)
    logger.info(
        "%s: %s %s, weights %s, %d features",
        key,
        config.kind,
        config.arch,
        extractor.weights_id,
        extractor.feature_dim,
    )
    return extractor


def short_errors(err: pydantic.ValidationError) -> str:
    """A pydantic error as ``field: message; ...`` on one line."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = re.sub(r"^Value error, ", "", e["msg"])
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
