"""Robustness of the detector to image perturbations: configuration, AUC table, summary, plot.

The validation pipeline scores the test images under every (perturbation, severity) of
:func:`perturbation_grid` (features of the perturbed views through the feature cache, see
:class:`~deepfake_kedro.evaluation.perturbations.PerturbationViews`); this module turns those
scores into an AUC table, a per-family table, the mean and worst AUC drop against clean
images over the gated conditions (and over the reported-only ones), and a figure.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sklearn.metrics import roc_auc_score

from deepfake_kedro.evaluation.perturbations import (
    DEFAULT_SEVERITIES,
    PERTURBATIONS,
    check_perturbation,
    perturbation_label,
)
from deepfake_kedro.values import finite_or_none

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ["perturbation", "severity", "auc", "drop", "n", "gated"]
FAMILY_COLUMNS = ["perturbation", "severity", "manipulation", "auc", "clean_auc", "drop", "gated"]

REPORTED_ONLY: dict[str, list[float]] = {
    # Each erases the evidence by construction, so a gate on it measures the perturbation:
    "jpeg": [75.0, 50.0, 30.0],  # a camera-JPEG real re-saved is double-compressed
    "rescale": [0.5, 0.25],  # 2x / 4x up-sampling of the real: the up-sampling family's trace
    "blur": [2.0],  # wipes the high frequencies where up-sampling traces live
    "noise": [10.0],
    "contrast": [0.5],
}
"""Levels evaluated and reported but not gated by default (``robustness.reported_only``)."""


class RobustnessConfig(BaseModel):
    """Which perturbations to score the test split under (``params:validation.robustness``).

    Attributes:
        enabled: Run the robustness evaluation at all.
        perturbations: Perturbation name -> severities (see ``perturbations.PERTURBATIONS``).
        max_images: Score at most this many test images (a label-stratified, seeded sample)
            to bound the time of re-extraction; ``None`` scores all.
        seed: Seeds the sample and the per-image noise.
        reported_only: Perturbation -> severities that are evaluated and reported but left
            out of the gate's mean and worst drop (default :data:`REPORTED_ONLY`: levels that
            erase a manipulation's evidence by construction). ``{}`` gates every level; a
            team gates what its platform does to images.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    perturbations: dict[str, list[float]] = Field(
        default_factory=lambda: {name: list(levels) for name, levels in DEFAULT_SEVERITIES.items()}
    )
    max_images: int | None = Field(None, ge=2)
    seed: int = 0
    reported_only: dict[str, list[float]] = Field(
        default_factory=lambda: {name: list(levels) for name, levels in REPORTED_ONLY.items()}
    )

    @field_validator("reported_only")
    @classmethod
    def _known_perturbations(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        return _check_levels(value, listed=False)

    def is_gated(self, name: str, severity: float) -> bool:
        """Whether the gate counts this condition (it is reported either way)."""
        return float(severity) not in {float(s) for s in self.reported_only.get(name, [])}

    @field_validator("perturbations")
    @classmethod
    def _known_and_nonempty(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        return _check_levels(value, listed=True)


def _check_levels(value: dict[str, list[float]], *, listed: bool) -> dict[str, list[float]]:
    """Known perturbations with in-range severities; ``listed``: also non-empty and unique
    (the evaluated grid, as opposed to a filter over it)."""
    allowed = ", ".join(sorted(PERTURBATIONS))
    for name, levels in value.items():
        if name not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {name!r}; allowed: {allowed}")
        if listed:
            if not levels:
                raise ValueError(
                    f"perturbation {name!r} has no severities; list at least one (defaults: "
                    f"{DEFAULT_SEVERITIES[name]}) or remove the key"
                )
            if len(set(levels)) != len(levels):
                raise ValueError(f"perturbation {name!r} lists a severity twice: {levels}")
        for severity in levels:
            check_perturbation(name, severity)
    return value


def perturbation_grid(config: RobustnessConfig) -> list[tuple[str, float]]:
    """The (perturbation, severity) conditions to score, in configuration order.

    Returns:
        An empty list when ``config.enabled`` is false.
    """
    if not config.enabled:
        return []
    return [(name, float(s)) for name, levels in config.perturbations.items() for s in levels]


def select_images(
    rows: pd.DataFrame, config: RobustnessConfig, label_column: str = "label"
) -> pd.DataFrame:
    """The test rows to perturb: all of them, or a label-stratified seeded sample.

    Each label keeps its share of ``config.max_images`` (at least one image per label); the
    rows keep their original order.

    Args:
        rows: The test split.
        config: Gives ``max_images`` and ``seed``.
        label_column: Column to stratify on.

    Raises:
        KeyError: if ``label_column`` is missing and a sample is needed.
    """
    limit = config.max_images
    if limit is None or len(rows) <= limit:
        return rows
    if label_column not in rows.columns:
        raise KeyError(
            f"cannot stratify the robustness sample: column {label_column!r} is missing "
            f"(columns: {', '.join(map(str, rows.columns))})"
        )
    labels = rows[label_column].astype(str).to_numpy()
    classes, counts = np.unique(labels, return_counts=True)
    quotas = _allocate(counts, limit)
    rng = np.random.default_rng(config.seed)
    keep: list[np.ndarray] = []
    for label, quota in zip(classes, quotas, strict=True):
        positions = np.flatnonzero(labels == label)
        keep.append(rng.choice(positions, size=quota, replace=False))
    chosen = np.sort(np.concatenate(keep))
    logger.info(
        "robustness: scoring %d of %d test images (stratified by %s, seed %d)",
        len(chosen),
        len(rows),
        label_column,
        config.seed,
    )
    return rows.iloc[chosen]


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, >= 1 each)."""
    exact = counts / counts.sum() * total
    quotas = np.minimum(np.maximum(np.floor(exact).astype(int), 1), counts)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while quotas.sum() < total:
        for i in order:
            if quotas.sum() >= total:
                break
            if quotas[i] < counts[i]:
                quotas[i] += 1
    while quotas.sum() > total:  # the ">= 1 each" floor can overshoot a tiny total
        i = int(np.argmax(quotas))
        quotas[i] -= 1
    return quotas


def _binary_labels(y_true: np.ndarray) -> np.ndarray:
    values = np.asarray(y_true)
    if values.dtype.kind in "OUS":
        mapping = {"real": 0, "fake": 1}
        unknown = sorted({str(v) for v in values} - set(mapping))
        if unknown:
            raise ValueError(f"y_true holds labels {unknown}; expected 0/1 or 'real'/'fake'")
        return np.array([mapping[str(v)] for v in values], dtype=int)
    return values.astype(int)


def robustness_table(
    clean_auc: float,
    y_true: np.ndarray,
    perturbed_scores: dict[tuple[str, float], np.ndarray],
    config: RobustnessConfig | None = None,
) -> pd.DataFrame:
    """AUC of the detector under each perturbation, and its drop from the clean AUC.

    Args:
        clean_auc: ROC AUC on the same images unperturbed.
        y_true: Labels of the scored images (1/``"fake"`` = fake).
        perturbed_scores: ``(perturbation, severity)`` -> fake probabilities, aligned with
            ``y_true``.
        config: Says which conditions are gated (default: every one).

    Returns:
        Columns ``perturbation``, ``severity``, ``auc``, ``drop`` (clean - perturbed), ``n``,
        ``gated``; one row per condition, in the order given. AUC is NaN where one class is
        absent.

    Raises:
        ValueError: if scores are misaligned with ``y_true`` or not finite.
    """
    labels = _binary_labels(y_true)
    both_classes = len(np.unique(labels)) == 2
    if not both_classes:
        logger.warning("robustness: the scored images hold one class only; AUC is undefined")
    rows = []
    for (name, severity), scores in perturbed_scores.items():
        values = np.asarray(scores, dtype=float).ravel()
        label = perturbation_label(name, severity)
        if len(values) != len(labels):
            raise ValueError(
                f"{label}: {len(values)} scores for {len(labels)} labels; score the same images "
                "as the clean run, in the same order"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"{label}: {int((~np.isfinite(values)).sum())} non-finite scores")
        auc = float(roc_auc_score(labels, values)) if both_classes else math.nan
        rows.append(
            {
                "perturbation": str(name),
                "severity": float(severity),
                "auc": auc,
                "drop": float(clean_auc) - auc,
                "n": len(values),
                "gated": True if config is None else config.is_gated(name, severity),
            }
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def robustness_by_family(
    clean: pd.DataFrame, perturbed: pd.DataFrame, config: RobustnessConfig | None = None
) -> pd.DataFrame:
    """AUC of each fake family against all reals, clean and under each condition: which
    evidence each level erases.

    Args:
        clean: The scored images: ``y`` (1 = fake), ``score``, ``manipulation``.
        perturbed: The same images under each condition, condition-major in the same row
            order: ``perturbation``, ``severity``, ``score``.
        config: Says which conditions are gated.

    Returns:
        Columns :data:`FAMILY_COLUMNS`, one row per condition and family (NaN AUC where a
        family or the reals are absent).
    """
    y = clean["y"].to_numpy()
    family = clean["manipulation"].astype(str).to_numpy()
    families = sorted(set(family[y == 1]))
    real = y == 0
    rows = []

    def auc_of(scores: np.ndarray, name: str) -> float:
        chosen = real | ((y == 1) & (family == name))
        labels = y[chosen]
        if len(np.unique(labels)) < 2:
            return math.nan
        return float(roc_auc_score(labels, scores[chosen]))

    clean_auc = {name: auc_of(clean["score"].to_numpy(), name) for name in families}
    for (name, severity), group in perturbed.groupby(["perturbation", "severity"], sort=False):
        scores = group["score"].to_numpy()
        if len(scores) != len(y):
            raise ValueError(f"{perturbation_label(name, severity)}: scores misaligned with rows")
        for fam in families:
            auc = auc_of(scores, fam)
            rows.append(
                {
                    "perturbation": str(name),
                    "severity": float(severity),
                    "manipulation": fam,
                    "auc": auc,
                    "clean_auc": clean_auc[fam],
                    "drop": clean_auc[fam] - auc,
                    "gated": True if config is None else config.is_gated(name, severity),
                }
            )
    return pd.DataFrame(rows, columns=FAMILY_COLUMNS)


def _drops(rows: pd.DataFrame) -> dict[str, Any]:
    """Mean and worst drop of some conditions (``None`` when there are none)."""
    if len(rows) == 0:
        return {"mean_drop": None, "worst_drop": None, "worst_case": None, "n_conditions": 0}
    worst = rows.loc[rows["drop"].idxmax()]
    return {
        "mean_drop": finite_or_none(rows["drop"].mean()),
        "worst_drop": finite_or_none(worst["drop"]),
        "worst_case": perturbation_label(str(worst["perturbation"]), worst["severity"]),
        "n_conditions": len(rows),
    }


def robustness_summary(table: pd.DataFrame, clean_auc: float) -> dict[str, Any]:
    """Mean and worst AUC drop over the gated conditions, JSON-ready (NaN becomes ``None``).

    Args:
        table: Output of :func:`robustness_table`.
        clean_auc: ROC AUC on clean images.

    Returns:
        ``{"clean_auc", "n_gated_levels", "mean_drop", "worst_drop", "worst_case",
        "n_conditions", "per_perturbation", "reported_only", "all"}``: the top-level drops
        are over the gated conditions with a finite AUC (what the gate checks; there are
        ``n_gated_levels`` gated conditions in all); ``reported_only`` and ``all`` hold the same
        figures over the reported-only and over every condition; ``worst_case`` labels the
        condition with the largest drop (``"jpeg q=30"``); ``per_perturbation`` maps each
        perturbation to its mean drop over all its severities.
    """
    table = pd.DataFrame(table).reset_index(drop=True)
    if "gated" not in table:
        table = table.assign(gated=True)
    if len(table):
        drops = pd.to_numeric(table["drop"], errors="coerce")
        valid = table.assign(drop=drops)[drops.notna().to_numpy()]
    else:
        valid = table
    gated = valid["gated"].astype(bool).to_numpy() if len(valid) else np.zeros(0, bool)
    summary: dict[str, Any] = {
        "clean_auc": finite_or_none(clean_auc),
        "n_gated_levels": int(table["gated"].astype(bool).sum()) if len(table) else 0,
        **_drops(valid[gated]),
        "per_perturbation": {},
        "reported_only": _drops(valid[~gated]),
        "all": _drops(valid),
    }
    if len(valid):
        per = valid.groupby("perturbation", sort=False)["drop"].mean()
        summary["per_perturbation"] = {str(k): finite_or_none(v) for k, v in per.items()}
    return summary


def plot_robustness(table: pd.DataFrame, clean_auc: float | None = None) -> Figure:
    """AUC against severity, one panel per perturbation, with the clean AUC as a dashed line.

    Severities are placed in table order (mildest first) on a categorical axis, since each
    perturbation has its own scale.

    Args:
        table: Output of :func:`robustness_table` (or its rows as records).
        clean_auc: Clean AUC; derived from ``auc + drop`` of the table when omitted.
    """
    table = pd.DataFrame(table)
    if clean_auc is None and len(table):
        derived = (
            pd.to_numeric(table["auc"], errors="coerce")
            + pd.to_numeric(table["drop"], errors="coerce")
        ).dropna()
        clean_auc = float(derived.iloc[0]) if len(derived) else None
    names = list(dict.fromkeys(table["perturbation"].astype(str))) if len(table) else []
    ncols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if not names:
        axes[0].text(0.5, 0.5, "no robustness results", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, name in zip(axes, names, strict=False):
        part = table[table["perturbation"].astype(str) == name]
        ticks = [perturbation_label(name, s).split(" ", 1)[1] for s in part["severity"]]
        aucs = pd.to_numeric(part["auc"], errors="coerce").to_numpy(dtype=float)
        if clean_auc is not None:  # start each line at the clean AUC so the fall is visible
            ticks, aucs = ["clean", *ticks], np.concatenate([[clean_auc], aucs])
            ax.axhline(clean_auc, color="tab:green", linestyle="--", label=f"clean {clean_auc:.3f}")
            ax.legend(loc="lower left", fontsize="small")
        x = np.arange(len(ticks))
        ax.plot(x, aucs, marker="o", color="tab:blue")
        ax.set_xticks(x, ticks)
        ax.set_title(name)
        ax.set_ylabel("ROC AUC")
        ax.set_ylim(min(0.45, ax.get_ylim()[0]), 1.01)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        if names:
            ax.set_axis_off()
    fig.suptitle("AUC under perturbations")
    return fig
