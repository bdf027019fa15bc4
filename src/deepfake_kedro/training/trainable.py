"""Branches that learn from pixels inside ``ensemble_training``: their images and their steps.

A trainable branch (``train_mode: finetune``: the ``srm_cnn`` pixel branch, or a pretrained
backbone fine-tuned) is trained end to end with the fusion head: each step decodes the
batch's training images, draws a fresh augmentation of each (the operations and ranges of
``feature_extraction.augmentation``, seeded by the run's seed, the epoch and the row, so a
rerun or a resumed run sees the same pixels), preprocesses them with the branch's own
``preprocess`` (the one the registered model runs) and, for networks that take any size, a
random crop on the JPEG grid. Validation images are preprocessed once, unaugmented, and
scored in float32 at every epoch, as the registered model will score them.

Why joint training rather than stacking a separately trained pixel model on held-out rows:
one model and one loop (the registered model is the trained graph, nothing is refitted),
no training rows held back from a few hundred, and a fine-tuned backbone needs the head's
gradient anyway. The fusion head's branch dropout and early stopping on the validation
split (rows the branch never trains on) keep a branch that memorises its rows from taking
over.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from deepfake_kedro.io import ImageStore
from deepfake_kedro.models.backbones import (
    CROP_GRID,
    BackboneConfig,
    FeatureExtractor,
    build_extractor,
    is_trainable,
)
from deepfake_kedro.training.augmentation import AugmentationConfig, augment
from deepfake_kedro.training.synthetic import SyntheticFakes, SyntheticFakesConfig, face_boxes

logger = logging.getLogger(__name__)

_NORMALIZATION_IMAGES = 256
_EMBED_BATCH = 64


@dataclass
class TrainableInputs:
    """What the trainable branches learn from.

    Attributes:
        extractors: Each trainable branch's network, keyed by branch; trained in place,
            they end with the best epoch's weights, marked trained.
        store: Where the images are read: ``read_bytes(path)``, and ``read_view(path,
            view)`` for rows with a ``view`` (e.g. a synthetic fake made from the image).
        train_rows: One row per training row, in the order of the training labels:
            ``image_path`` and, optionally, ``view`` (None / empty: the image itself).
        val_rows: The validation rows, in the order of the validation labels.
        augmentation: The on-the-fly augmentation (None: none); branches whose
            ``augments`` is false see unaugmented images.
    """

    extractors: Mapping[str, FeatureExtractor]
    store: Any
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    augmentation: AugmentationConfig | None = None

    def prepare(self, n_train: int, n_val: int) -> None:
        """Turn the branches' gradients on; refuse rows that do not line up with the labels,
        or a branch with nothing to train.

        Raises:
            ValueError: naming the branch or the rows.
        """
        for split, rows, n in (("train", self.train_rows, n_train), ("val", self.val_rows, n_val)):
            if "image_path" not in rows.columns:
                raise ValueError(f"trainable branches: the {split} rows lack an image_path column")
            if len(rows) != n:
                raise ValueError(
                    f"trainable branches: {len(rows)} {split} image rows for {n} {split} labels; "
                    "they must line up one to one"
                )
        for name, extractor in self.extractors.items():
            extractor.requires_grad_(True)
            if not any(p.requires_grad for p in extractor.parameters()):
                raise ValueError(
                    f"branch {name!r} has train_mode finetune but its {extractor.config.kind} "
                    "extractor has no weights to train: set train_mode to 'frozen'"
                )
            crop = extractor.train_crop
            if crop is not None and crop > extractor.config.image_size:
                raise ValueError(
                    f"branch {name!r}: train_crop {crop} exceeds image_size "
                    f"{extractor.config.image_size}"
                )


def _views(rows: pd.DataFrame) -> list[str | None]:
    if "view" not in rows.columns:
        return [None] * len(rows)
    return [v if isinstance(v, str) and v else None for v in rows["view"].tolist()]


def _read(store: Any, path: str, view: str | None, data: Mapping[str, bytes]) -> Image.Image:
    try:
        if view is not None:
            return store.read_view(path, view).convert("RGB")
        raw = data[path] if path in data else store.read_bytes(path)
        with Image.open(io.BytesIO(raw)) as opened:
            return opened.convert("RGB")
    except Exception as exc:
        raise RuntimeError(
            f"trainable branches: cannot read training image {path!r}"
            f"{f' (view {view})' if view else ''} ({type(exc).__name__}: {exc}); restore the "
            "file or re-run data_ingestion"
        ) from exc


class _TrainingImages(Dataset):
    """Row index -> (index, {branch: uint8 [3, s, s]}): decoded, augmented for the epoch,
    preprocessed by each branch, randomly cropped where the branch asks for it."""

    def __init__(self, inputs: TrainableInputs, seed: int) -> None:
        rows = inputs.train_rows
        self.paths = rows["image_path"].astype(str).tolist()
        self.views = _views(rows)
        self.store = inputs.store
        # The clean images' bytes, read once: every epoch decodes them again, and the store
        # may be an object store.
        self.data = {
            p: inputs.store.read_bytes(p)
            for p, v in zip(self.paths, self.views, strict=True)
            if v is None
        }
        self.preprocess = {b: e.preprocess for b, e in inputs.extractors.items()}
        self.crops = {b: e.train_crop for b, e in inputs.extractors.items()}
        self.augmented = {b for b, e in inputs.extractors.items() if e.augments}
        self.augmentation = inputs.augmentation
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, dict[str, Tensor]]:
        image = _read(self.store, self.paths[index], self.views[index], self.data)
        # One generator per (seed, epoch, row): the same pixels whatever the worker count.
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2)
        augmented = image
        if self.augmentation is not None and self.augmented:
            augmented = augment(image, self.augmentation, int(state[0]))
        rng = np.random.default_rng(int(state[1]))
        out = {}
        for branch, preprocess in self.preprocess.items():
            pixels = preprocess(augmented if branch in self.augmented else image)
            crop = self.crops[branch]
            if crop is not None and crop < pixels.shape[-1]:
                steps = (
                    (pixels.shape[-1] - crop) // CROP_GRID,
                    (pixels.shape[-2] - crop) // CROP_GRID,
                )
                x, y = (int(rng.integers(0, s + 1)) * CROP_GRID for s in steps)
                pixels = pixels[:, y : y + crop, x : x + crop].contiguous()
            out[branch] = pixels
        return index, out


class TrainingBatches:
    """The training rows of each epoch, in the loop's shuffled order, with their pixels."""

    def __init__(
        self, inputs: TrainableInputs, seed: int, batch_size: int, num_workers: int
    ) -> None:
        self.dataset = _TrainingImages(inputs, seed)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def epoch(self, epoch: int, order: Tensor) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """``(row indices, {branch: uint8 batch})`` over ``order`` for ``epoch``."""
        self.dataset.epoch = epoch  # before the workers start: they copy the dataset
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=order.tolist(),
            num_workers=self.num_workers,
            persistent_workers=False,
        )
        yield from loader


def preprocess_rows(inputs: TrainableInputs, rows: pd.DataFrame) -> dict[str, Tensor]:
    """Each branch's uint8 ``[N, 3, S, S]`` of ``rows``, unaugmented and uncropped (what
    scoring computes)."""
    paths = rows["image_path"].astype(str).tolist()
    views = _views(rows)
    out: dict[str, list[Tensor]] = {b: [] for b in inputs.extractors}
    for path, view in zip(paths, views, strict=True):
        image = _read(inputs.store, path, view, {})
        for branch, extractor in inputs.extractors.items():
            out[branch].append(extractor.preprocess(image))
    return {
        b: torch.stack(v) if v else torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
        for b, v in out.items()
    }


@torch.inference_mode()
def embed(extractor: FeatureExtractor, images: Tensor, device: torch.device) -> Tensor:
    """The branch's features of uint8 ``images`` in float32, batch by batch, on ``device``."""
    chunks = [
        extractor(images[i : i + _EMBED_BATCH].to(device)).float()
        for i in range(0, len(images), _EMBED_BATCH)
    ]
    return torch.cat(chunks) if chunks else torch.zeros((0, extractor.feature_dim), device=device)


def normalization_rows(inputs: TrainableInputs, seed: int) -> pd.DataFrame:
    """Up to 256 distinct training images (seeded), whose initial features standardise each
    trainable branch in the fusion head."""
    rows = inputs.train_rows.assign(view=_views(inputs.train_rows))
    rows = rows[rows["view"].isna()].drop_duplicates("image_path")
    if len(rows) > _NORMALIZATION_IMAGES:
        rows = rows.sample(_NORMALIZATION_IMAGES, random_state=seed)
    return rows


def param_groups(
    extractors: Mapping[str, FeatureExtractor], weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW groups of the trainable branches: each its own ``lr_scale``, weight decay on
    weight matrices and kernels only (as for the head)."""
    groups = []
    for extractor in extractors.values():
        params = [p for p in extractor.parameters() if p.requires_grad]
        groups += [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay,
             "lr_scale": extractor.lr_scale},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0,
             "lr_scale": extractor.lr_scale},
        ]  # fmt: skip
    return [g for g in groups if g["params"]]


def autocast_for(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when ``amp`` (the loss scaler goes with it), else nothing:
    float32 on the CPU."""
    if device.type == "cuda" and amp:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def make_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """The loss scaler of float16 training (disabled, a no-op, elsewhere)."""
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and amp)


class Branches(nn.Module):
    """The trainable branches as one module (so ``.to(device)`` moves them all)."""

    def __init__(self, extractors: Mapping[str, FeatureExtractor]) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(dict(extractors))

    def forward(self, pixels: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {name: branch(pixels[name]) for name, branch in self.branches.items()}


# ------------------------------------------------------------- from the parameters


def trainable_configs(backbones: dict[str, Any]) -> dict[str, BackboneConfig]:
    """The enabled ``train_mode: finetune`` entries of ``feature_extraction.backbones``, typed."""
    configs = {}
    for name, entry in backbones.items():
        config = entry if isinstance(entry, BackboneConfig) else dict(entry)
        enabled = config.enabled if isinstance(config, BackboneConfig) else config.get("enabled", True)
        if not enabled or not is_trainable(config):
            continue
        if not isinstance(config, BackboneConfig):
            try:
                config = BackboneConfig.model_validate(config)
            except ValueError as err:
                raise ValueError(f"feature_extraction.backbones.{name}: {err}") from err
        configs[name] = config
    return configs


def pixel_settings(
    manifest: pd.DataFrame,
    augmentation: AugmentationConfig | None,
    synthetic_fakes: SyntheticFakesConfig | None,
) -> dict[str, Any]:
    """What trainable branches read besides the features: which images, labels and splits,
    and how they are augmented and blended (for the training-reuse digest)."""
    columns = [c for c in ("content_hash", "split", "label", "face_box") if c in manifest.columns]
    return {
        "rows": manifest[columns].astype(str).to_numpy().tolist(),
        "augmentation": augmentation.model_dump(mode="json") if augmentation else None,
        "synthetic_fakes": synthetic_fakes.model_dump(mode="json") if synthetic_fakes else None,
    }


def trainable_inputs(
    configs: dict[str, BackboneConfig],
    manifest: pd.DataFrame,
    train_rows: pd.DataFrame,
    raw_images: ImageStore | None,
    augmentation: AugmentationConfig | None,
    synthetic_fakes: SyntheticFakesConfig | None,
    branches: list[str],
) -> TrainableInputs:
    """The trainable branches' networks and the images they learn from."""
    if raw_images is None:
        raise ValueError(
            f"trainable branch(es) {sorted(configs)} need the images: the ensemble_training "
            "node must read raw_images (its pipeline adds it when a branch is trainable)"
        )
    if augmentation is not None and not isinstance(augmentation, AugmentationConfig):
        augmentation = AugmentationConfig.model_validate(augmentation)
    store: Any = raw_images
    if train_rows["view"].notna().any():  # synthetic fakes of the train split's reals
        if synthetic_fakes is None:
            raise ValueError(
                "the frozen branches' tables hold synthetic fakes but the ensemble_training node "
                "got no feature_extraction.synthetic_fakes to make them for the trainable branches"
            )
        if not isinstance(synthetic_fakes, SyntheticFakesConfig):
            synthetic_fakes = SyntheticFakesConfig.model_validate(synthetic_fakes)
        store = SyntheticFakes(raw_images, synthetic_fakes, face_boxes(manifest))
    extractors = {
        name: build_extractor(config, param_key=f"feature_extraction.backbones.{name}")
        for name, config in configs.items()
        if name in branches
    }
    return TrainableInputs(
        extractors=extractors,
        store=store,
        train_rows=train_rows.reset_index(drop=True),
        val_rows=manifest[manifest["split"] == "val"].reset_index(drop=True),
        augmentation=augmentation,
    )
