"""Typed parameters of fusion-head training (``params:ensemble_training``).

Build them with ``TrainingConfig.model_validate(params)`` so that a bad value or a typo'd key
fails before the run starts, with the offending field named in the error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deepfake_kedro.models.fusion import FusionConfig


class TrainableConfig(BaseModel):
    """How branches that learn from pixels train (``ensemble_training.trainable``).

    They are the branches with ``train_mode: finetune`` (a ``kind: srm_cnn`` pixel branch,
    or a pretrained backbone fine-tuned): trained end to end with the fusion head, on the
    training images decoded and preprocessed by the branch's own preprocessing (the one the
    registered model runs), each epoch a fresh augmentation of every image.

    Attributes:
        epochs: Epochs when a trainable branch is fused (an epoch runs every training image
            through the network, where a frozen-only epoch costs milliseconds); None:
            ``ensemble_training.epochs``.
        num_workers: DataLoader processes that decode and augment the training images
            (0: in the training process).
        amp: On CUDA, train in float16 autocast with a gradient scaler (the weights and
            the evaluation stay float32). On the CPU training is float32: bf16 is emulated
            on CPUs without AMX/AVX512-BF16 and was slower where measured.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)
    amp: bool = True


class TrainingConfig(BaseModel):
    """Which branches to fuse and how to train the fusion head.

    Attributes:
        branches: Feature branches to fuse, in order; non-empty and unique. None (the
            default) fuses every branch of ``feature_extraction.backbones``.
        fusion: Fusion head shape and regularisation.
        epochs: Most epochs to train.
        batch_size: Rows per optimisation step.
        learning_rate: Peak AdamW learning rate, in (0, 1].
        weight_decay: AdamW weight decay on weight matrices.
        lr_schedule: ``cosine`` (to a tenth of the peak), ``plateau`` (halve when val AUC
            stalls) or ``constant``; all after a linear warmup.
        warmup_epochs: Epochs of linear learning-rate warmup.
        patience: Epochs without a val-AUC gain of ``min_delta`` before training stops.
        min_delta: Smallest val-AUC gain that counts as an improvement.
        class_balance: Weight positives by n_neg / n_pos of the training labels.
        seed: Seed of weight init, dropout and shuffling.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        resume: Continue from the last checkpoint when one matches this config.
        reuse: When the saved training state is a finished training of exactly this run's
            inputs (features, labels, images, parameters: see
            :mod:`deepfake_kedro.training.reuse`), take its result instead of training again.
        trainable: Settings of the branches that learn from pixels (if any is fused).
    """

    model_config = ConfigDict(extra="forbid")

    branches: list[str] | None = None
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(1e-2, ge=0)
    lr_schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    warmup_epochs: int = Field(3, ge=0)
    patience: int = Field(15, ge=1)
    min_delta: float = Field(1e-4, ge=0)
    class_balance: bool = True
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    resume: bool = False
    reuse: bool = True
    trainable: TrainableConfig = Field(default_factory=TrainableConfig)

    @field_validator("branches")
    @classmethod
    def _non_empty_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("list at least one feature branch, e.g. ['resnet', 'clip']")
        seen: set[str] = set()
        repeated = sorted({b for b in value if b in seen or seen.add(b)})
        if repeated:
            raise ValueError(f"branches are listed more than once: {', '.join(repeated)}")
        bad = [b for b in value if not b or "." in b]
        if bad:
            raise ValueError(f"branch names must be non-empty and contain no '.': {bad}")
        return value
