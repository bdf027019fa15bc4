"""Typed parameters of the validation pipeline (``params:validation``).

Build them with ``ValidationConfig.model_validate(params)`` so that a bad value or a typo'd key
fails before the run starts, with the offending field named in the error. ``GateConfig`` holds
the limits that decide whether a model may be registered; ``gate.validation_threshold`` is the
per-run override point (``kedro run --params validation.gate.validation_threshold=0.9``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Metrics a run may put a floor (higher is better) or a ceiling (lower is better) on.
MIN_METRIC_KEYS = ("average_precision", "accuracy", "f1", "precision", "recall", "auc_ci_low")
MAX_METRIC_KEYS = ("eer", "brier", "ece")

Unit = Annotated[float, Field(ge=0, le=1)]


def _check_keys(value: dict[str, float], allowed: tuple[str, ...], field: str) -> dict[str, float]:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {field} key(s) {unknown}; allowed: {', '.join(allowed)}")
    return value


class GateConfig(BaseModel):
    """Limits a validated model must meet before registration.

    Attributes:
        validation_threshold: Smallest test ROC AUC that passes, in [0, 1].
        min_metrics: Optional floors on other test metrics, keyed by ``MIN_METRIC_KEYS``.
        max_metrics: Optional ceilings on test metrics, keyed by ``MAX_METRIC_KEYS``.
        max_mean_robustness_drop: Largest mean AUC drop over all perturbations.
        max_worst_robustness_drop: Largest AUC drop of any single perturbation.
        max_auc_gap: Largest per-group AUC gap (groups of valid size with both classes).
        max_equalized_odds_difference: Largest equalized-odds difference of any attribute.
    """

    model_config = ConfigDict(extra="forbid")

    validation_threshold: Unit = 0.95
    min_metrics: dict[str, Unit] = Field(default_factory=dict)
    max_metrics: dict[str, Unit] = Field(default_factory=dict)
    max_mean_robustness_drop: Unit = 0.05
    max_worst_robustness_drop: Unit = 0.15
    max_auc_gap: Unit = 0.10
    max_equalized_odds_difference: Unit = 0.20

    @field_validator("min_metrics")
    @classmethod
    def _known_min_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_keys(value, MIN_METRIC_KEYS, "min_metrics")

    @field_validator("max_metrics")
    @classmethod
    def _known_max_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_keys(value, MAX_METRIC_KEYS, "max_metrics")


class ValidationConfig(BaseModel):
    """How the trained detector is validated on the held-out splits.

    Attributes:
        threshold_method: How the operating threshold is chosen on the validation split:
            ``eer`` (FPR == FNR), ``youden`` (max TPR - FPR) or ``f1`` (max F1).
        bootstrap_samples: Resamples of the test split behind the AUC confidence interval.
        confidence: Confidence level of that interval, in (0, 1).
        seed: Seed of the bootstrap.
        calibration_bins: Equal-width bins of the calibration curve and ECE.
        group_columns: Manifest group attributes to audit for fairness; empty disables it.
        intersection: Also audit the intersection of all group columns.
        min_group_size: Groups with fewer test images are reported as too small and left out
            of the fairness gaps.
        gate: Limits that decide the verdict.
        robustness: Perturbation settings, validated by the robustness module.
    """

    model_config = ConfigDict(extra="forbid")

    threshold_method: Literal["eer", "youden", "f1"] = "eer"
    bootstrap_samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0
    calibration_bins: int = Field(10, ge=1)
    group_columns: list[str] = Field(default_factory=lambda: ["group_a", "group_b"])
    intersection: bool = True
    min_group_size: int = Field(30, ge=1)
    gate: GateConfig = Field(default_factory=GateConfig)
    robustness: dict[str, Any] = Field(default_factory=dict)

    @field_validator("group_columns")
    @classmethod
    def _unique_names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("group column names must be non-empty")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"group columns are listed more than once: {', '.join(repeated)}")
        return value
