"""Typed parameters of the data-ingestion step (``params:data_ingestion``).

Build them with ``IngestionConfig.model_validate(params)`` so that a bad value or a typo'd
key fails before the run starts, with the offending field named in the error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_FRACTION_TOLERANCE = 1e-6


class SplitConfig(BaseModel):
    """Fractions of images per split and the seed that orders sources.

    Attributes:
        train: Fraction of images in the training split, in (0, 1).
        val: Fraction of images in the validation split, in (0, 1).
        test: Fraction of images in the test split, in (0, 1).
        seed: Seed of the hash that orders sources before they are allocated.
    """

    model_config = ConfigDict(extra="forbid")

    train: float = Field(0.70, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > _FRACTION_TOLERANCE:
            raise ValueError(
                f"split fractions train={self.train} + val={self.val} + test={self.test} "
                f"sum to {total:.6g}, not 1; adjust data_ingestion.split so they add up to 1"
            )
        return self

    @property
    def fractions(self) -> dict[str, float]:
        """The split fractions by name, in allocation order (train, val, test)."""
        return {"train": self.train, "val": self.val, "test": self.test}


class IngestionConfig(BaseModel):
    """Parameters of manifest validation and splitting.

    Attributes:
        on_invalid: ``fail`` raises on any problem; ``drop`` drops the bad rows and goes on.
        group_columns: Manifest columns holding group attributes (fairness slices).
        min_image_size: Smallest allowed shorter image side, in pixels.
        min_group_size: Values of a group column with fewer rows are reported as too small
            to judge (a warning and the data-quality report); their rows are kept.
        max_errors_shown: How many problems a validation error lists.
        num_workers: Threads reading images concurrently.
        split: Train/val/test fractions and seed.
    """

    model_config = ConfigDict(extra="forbid")

    on_invalid: Literal["fail", "drop"] = "fail"
    group_columns: list[str] = Field(default_factory=lambda: ["group_a", "group_b"])
    min_image_size: int = Field(64, ge=1)
    min_group_size: int = Field(10, ge=1)
    max_errors_shown: int = Field(10, ge=1)
    num_workers: int = Field(8, ge=1)
    split: SplitConfig = Field(default_factory=SplitConfig)

    @field_validator("group_columns")
    @classmethod
    def _unique_group_columns(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        repeated = sorted({c for c in value if c in seen or seen.add(c)})
        if repeated:
            raise ValueError(f"group columns are listed more than once: {', '.join(repeated)}")
        return value
