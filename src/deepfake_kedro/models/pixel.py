"""A branch that learns from pixels: fixed SRM high-pass filters, then a small residual CNN.

The frozen branches only describe an image; this one is trained end to end inside
``ensemble_training`` (``kind: srm_cnn``, always ``train_mode: finetune``). Its first layer is
the three high-pass residual filters of the spatial rich model (Fridrich & Kodovsky, 2012),
as used by Zhou et al. (CVPR 2018) for manipulation detection: fixed, so that the network
starts from the noise residual, where re-sampling, re-compression and blending leave their
traces, instead of having to learn to suppress the image content from a few hundred
images. A residual CNN (GroupNorm, so that training and inference compute the same
function at any batch size) follows, global-average-pooled to an embedding that the fusion
head reads next to the frozen branches' features.

Preprocessing is the one every backbone uses (:func:`~deepfake_kedro.models.backbones.
preprocess_image`: centre crop on the JPEG grid, no resampling), so the registered model
computes the pixels it was trained on. Training may take random crops of that tensor
(``options.train_crop``, on the same 16 px grid); scoring always sees the whole crop.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from deepfake_kedro.models.backbones import (
    CROP_GRID,
    BackboneConfig,
    FeatureExtractor,
    _check_choice,
    short_errors,
)

__all__ = ["SRM_KERNELS", "SrmCnn", "SrmCnnExtractor", "SrmCnnOptions"]

PIXEL_FEATURE_VERSION = 1
"""Bump when the network or its input pipeline changes what a given state computes."""

# The three SRM residual kernels of Zhou et al. (CVPR 2018): a second-order "square" 3x3,
# the 5x5 "KV" kernel and a first-order horizontal one, each normalised to unit gain on its
# strongest coefficient.
SRM_KERNELS: tuple[tuple[tuple[float, ...], ...], ...] = (
    (
        (0, 0, 0, 0, 0),
        (0, -1, 2, -1, 0),
        (0, 2, -4, 2, 0),
        (0, -1, 2, -1, 0),
        (0, 0, 0, 0, 0),
    ),
    (
        (-1, 2, -2, 2, -1),
        (2, -6, 8, -6, 2),
        (-2, 8, -12, 8, -2),
        (2, -6, 8, -6, 2),
        (-1, 2, -2, 2, -1),
    ),
    (
        (0, 0, 0, 0, 0),
        (0, 0, 0, 0, 0),
        (0, 1, -2, 1, 0),
        (0, 0, 0, 0, 0),
        (0, 0, 0, 0, 0),
    ),
)
_SRM_SCALE = (4.0, 12.0, 2.0)


class SrmCnnOptions(BaseModel):
    """``options`` of a ``kind: srm_cnn`` branch (part of its identity).

    Attributes:
        widths: Channels of the stem and of each residual stage; every stage halves the
            resolution (the stem too), so ``len(widths)`` sets the depth.
        residual_clip: SRM residuals are clipped to +-this many grey levels, then scaled to
            [-1, 1]: a strong edge does not drown the faint traces (a truncated linear unit,
            as in steganalysis).
        with_rgb: Also feed the normalised colour channels (blending and colour mismatches
            are not all high-frequency).
        train_crop: Training sees random crops of this side (a multiple of 16 px, on the
            JPEG grid) of the preprocessed image: ~(image_size / train_crop)^2 times cheaper
            per step, and a geometric augmentation. None trains on the whole image.
        augment: Draw a fresh augmentation of every training image at every epoch, from
            ``feature_extraction.augmentation``'s operations and ranges (its ``views`` only
            concern frozen branches).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    widths: tuple[int, ...] = Field((16, 32, 48, 64), min_length=2, max_length=8)
    residual_clip: float = Field(8.0, gt=0, le=255)
    with_rgb: bool = True
    train_crop: int | None = Field(128, ge=CROP_GRID)
    augment: bool = True

    @model_validator(mode="after")
    def _check(self) -> SrmCnnOptions:
        if any(w < 4 or w > 1024 for w in self.widths):
            raise ValueError(f"widths {list(self.widths)} must each be in 4..1024")
        if self.train_crop is not None and self.train_crop % CROP_GRID:
            raise ValueError(
                f"train_crop {self.train_crop} must be a multiple of {CROP_GRID} px (the JPEG "
                "grid the preprocessing keeps), or null"
            )
        return self


def _groups(channels: int) -> int:
    for groups in (8, 4, 2):
        if channels % groups == 0:
            return groups
    return 1


class _ResidualBlock(nn.Module):
    """conv3x3(stride) - GN - ReLU - conv3x3 - GN, plus a 1x1 strided shortcut; then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.shortcut = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
            nn.GroupNorm(_groups(c_out), c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SrmCnn(nn.Module):
    """uint8 (or 0..255 float) ``[B, 3, H, W]`` -> embedding ``[B, widths[-1]]``, any H, W."""

    def __init__(self, options: SrmCnnOptions) -> None:
        super().__init__()
        self.options = options
        kernels = torch.tensor(SRM_KERNELS, dtype=torch.float32)
        kernels = kernels / torch.tensor(_SRM_SCALE).view(3, 1, 1)
        # Depthwise over RGB: 3 residuals of each channel. A buffer, not a parameter: the
        # filters stay fixed, and being non-persistent they come from this code, not a file.
        self.register_buffer("srm", kernels.repeat(3, 1, 1).unsqueeze(1), persistent=False)
        c_in = 9 + (3 if options.with_rgb else 0)
        widths = options.widths
        self.stem = nn.Sequential(
            nn.Conv2d(c_in, widths[0], 3, stride=2, padding=1, bias=False),
            nn.GroupNorm(_groups(widths[0]), widths[0]),
            nn.ReLU(),
        )
        self.stages = nn.Sequential(
            *[_ResidualBlock(a, b, stride=2) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.embedding_dim = widths[-1]

    def residuals(self, images: torch.Tensor) -> torch.Tensor:
        """The fixed first layer, in float32 even under autocast (the traces are a few grey
        levels; bf16 keeps 8 significant bits)."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = images.float()
            residual = F.conv2d(x, self.srm, padding=2, groups=3)
            clip = self.options.residual_clip
            out = residual.clamp(-clip, clip) / clip
            if self.options.with_rgb:
                out = torch.cat([out, x / 127.5 - 1.0], dim=1)
            return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(self.residuals(images)))
        return x.float().mean(dim=(2, 3))


class SrmCnnExtractor(FeatureExtractor):
    """``kind: srm_cnn``: the trainable pixel branch (see the module docstring).

    Built with seeded random weights; its weights come from training (``ensemble_training``)
    and travel in the checkpoint, which rebuilds it with :meth:`FeatureExtractor.load_trained`.
    """

    feature_version: ClassVar[int] = PIXEL_FEATURE_VERSION
    default_arch: ClassVar[str | None] = "v1"
    default_train_mode: ClassVar[str] = "finetune"
    default_lr_scale: ClassVar[float] = 1.0

    @classmethod
    def check_config(cls, config: BackboneConfig) -> None:
        _check_choice("arch", config.arch, ("v1",))
        if config.train_mode != "finetune":
            raise ValueError(
                "kind srm_cnn learns from pixels inside ensemble_training and has no weights "
                f"to freeze: set train_mode to 'finetune' (got {config.train_mode!r})"
            )
        if config.weights != "none":
            raise ValueError(
                f"srm_cnn is trained from scratch: set weights to 'none' (got {config.weights!r})"
            )
        if config.resize is not None:
            raise ValueError(
                "srm_cnn reads pixel-level residuals, which resampling erases: set resize to null"
            )
        options = cls.options_of(config)
        if options.train_crop is not None and options.train_crop > config.image_size:
            raise ValueError(
                f"options.train_crop ({options.train_crop}) must be <= image_size "
                f"({config.image_size}), or null"
            )

    @staticmethod
    def options_of(config: BackboneConfig) -> SrmCnnOptions:
        """The typed options (``ValueError`` naming the bad option)."""
        try:
            return SrmCnnOptions.model_validate(config.options)
        except ValidationError as err:
            raise ValueError(f"options: {short_errors(err)}") from err

    def __init__(self, config: BackboneConfig, param_key: str = "") -> None:
        super().__init__(config, param_key)
        self.options = self.options_of(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.net = SrmCnn(self.options)
        self.weights_id = f"none:seed={config.seed}"
        self.feature_dim = self.net.embedding_dim
        self.requires_grad_(False)  # trainable only while ensemble_training trains it
        self.eval()

    @property
    def train_crop(self) -> int | None:
        return self.options.train_crop

    @property
    def augments(self) -> bool:
        return self.options.augment

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _identity_extra(self) -> dict[str, Any]:
        return {"options": self.options.model_dump(mode="json")}
