"""Fairness audit of the detector over the manifest's group attributes.

For each group attribute (and their intersection) a fairlearn ``MetricFrame`` gives per-group
counts, AUC, false positive / negative rates and selection rate at the operating threshold;
the gaps a gate checks are the largest per-group AUC gap and fairlearn's equalized-odds
difference. Both gaps use only groups with at least ``min_group_size`` images and both
classes: small groups are too noisy to gate on, and a group without reals (or fakes) has no
FPR (or FNR). Such groups stay in the table, flagged, never dropped.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)
from sklearn.metrics import roc_auc_score

from deepfake_kedro.evaluation.metrics import check_binary_inputs
from deepfake_kedro.values import finite_or_none

logger = logging.getLogger(__name__)

MISSING_GROUP = "<missing>"
_SEPARATOR = " & "


def fairness_report(
    frame: pd.DataFrame,
    threshold: float,
    group_columns: list[str],
    *,
    intersection: bool = True,
    min_group_size: int = 30,
) -> dict[str, Any]:
    """Per-group metrics and fairness gaps of the scored test split.

    Args:
        frame: Columns ``label`` (1 = fake), ``score`` and the group columns.
        threshold: Operating threshold chosen on the validation split.
        group_columns: Group attributes to audit; missing values form a ``<missing>`` group.
        intersection: With two or more columns, also audit their combination
            (attribute ``"group_a & group_b"``, groups like ``"a0 & b1"``).
        min_group_size: Groups with fewer images are flagged ``too_small`` and left out of
            the gaps.

    Returns:
        JSON-ready ``{"attributes": {name: {"by_group", "auc_gap", "auc_gap_groups",
        "equalized_odds_difference", "too_small", "single_class", "notes"}},
        "max_auc_gap", "max_auc_gap_attribute", "max_equalized_odds_difference",
        "max_equalized_odds_difference_attribute", "min_group_size", "threshold"}``. A gap is
        ``None`` (with a note) when fewer than two groups qualify.

    Raises:
        ValueError: On a missing column, bad labels or scores, or ``min_group_size < 1``.
    """
    if min_group_size < 1:
        raise ValueError(f"min_group_size must be at least 1, got {min_group_size}")
    for column in ("label", "score"):
        if column not in frame.columns:
            raise ValueError(
                f"the scored frame lacks column {column!r} (has {list(frame.columns)})"
            )
    missing = [c for c in group_columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"group column(s) {missing} are not in the scored test frame (columns: "
            f"{list(frame.columns)}); set validation.group_columns to group attributes of "
            "the manifest, or to [] to skip the fairness audit"
        )
    y, s = check_binary_inputs(frame["label"], frame["score"], split="test")
    predicted = (s >= threshold).astype(np.int64)

    features = {c: _group_values(frame[c]) for c in group_columns}
    if intersection and len(group_columns) >= 2:
        combined = pd.concat(list(features.values()), axis=1).agg(_SEPARATOR.join, axis=1)
        features[_SEPARATOR.join(group_columns)] = combined

    attributes = {
        name: _audit_attribute(y, s, predicted, values.to_numpy(), min_group_size)
        for name, values in features.items()
    }
    report: dict[str, Any] = {"attributes": attributes}
    for key in ("auc_gap", "equalized_odds_difference"):
        gaps = {n: a[key] for n, a in attributes.items() if a[key] is not None}
        worst = max(gaps, key=gaps.__getitem__) if gaps else None
        report[f"max_{key}"] = gaps[worst] if worst is not None else None
        report[f"max_{key}_attribute"] = worst
    report["min_group_size"] = int(min_group_size)
    report["threshold"] = float(threshold)
    if not group_columns:
        report["notes"] = ["no group columns configured (validation.group_columns is empty)"]
    logger.info(
        "Fairness over %s: max AUC gap %s, max equalized-odds difference %s",
        list(attributes),
        report["max_auc_gap"],
        report["max_equalized_odds_difference"],
    )
    return report


def _group_values(column: pd.Series) -> pd.Series:
    """Group labels as strings; missing values become an explicit ``<missing>`` group."""
    n_missing = int(column.isna().sum())
    if n_missing:
        logger.warning(
            "Group column %r has %d missing values; audited as group %r",
            column.name,
            n_missing,
            MISSING_GROUP,
        )
    return column.astype(object).where(column.notna(), MISSING_GROUP).astype(str)


def _auc_or_nan(y_true: np.ndarray, y_pred: np.ndarray, *, scores: np.ndarray) -> float:
    """ROC AUC of a group; NaN when the group lacks a class (``y_pred`` is unused)."""
    return float(roc_auc_score(y_true, scores)) if len(np.unique(y_true)) == 2 else math.nan


def _audit_attribute(
    y: np.ndarray, s: np.ndarray, predicted: np.ndarray, groups: np.ndarray, min_size: int
) -> dict[str, Any]:
    frame = MetricFrame(
        metrics={
            "count": count,
            "n_fake": lambda y_true, y_pred: int(np.sum(y_true)),
            "auc": _auc_or_nan,
            "fpr": false_positive_rate,
            "fnr": false_negative_rate,
            "selection_rate": selection_rate,
        },
        y_true=y,
        y_pred=predicted,
        sensitive_features=groups,
        sample_params={"auc": {"scores": s}},
    )
    table = frame.by_group
    table["n_fake"] = table["n_fake"].astype(int)
    table["count"] = table["count"].astype(int)
    table["n_real"] = table["count"] - table["n_fake"]
    # fairlearn reports a rate of 0 for a group without the class it is conditioned on.
    table.loc[table["n_real"] == 0, "fpr"] = math.nan
    table.loc[table["n_fake"] == 0, "fnr"] = math.nan
    too_small = table["count"] < min_size
    single_class = ~too_small & ((table["n_real"] == 0) | (table["n_fake"] == 0))
    valid = ~too_small & ~single_class

    notes = []
    if too_small.any():
        notes.append(
            f"{int(too_small.sum())} group(s) have fewer than {min_size} images and are "
            "left out of the gaps"
        )
    if single_class.any():
        notes.append(
            f"{int(single_class.sum())} group(s) lack real or fake images and are left out "
            "of the gaps"
        )
    auc_gap = eod = None
    gap_groups: list[str] | None = None
    if valid.sum() >= 2:
        auc = table.loc[valid, "auc"]
        gap_groups = [str(auc.idxmin()), str(auc.idxmax())]
        auc_gap = float(auc.max() - auc.min())
        keep = np.isin(groups, table.index[valid].to_numpy())
        eod = float(
            equalized_odds_difference(y[keep], predicted[keep], sensitive_features=groups[keep])
        )
    else:
        notes.append(
            f"fewer than 2 groups with at least {min_size} images and both classes: "
            "gaps not computed"
        )
    by_group = [
        {
            "group": str(group),
            "count": int(row["count"]),
            "n_real": int(row["n_real"]),
            "n_fake": int(row["n_fake"]),
            "auc": finite_or_none(row["auc"]),
            "fpr": finite_or_none(row["fpr"]),
            "fnr": finite_or_none(row["fnr"]),
            "selection_rate": finite_or_none(row["selection_rate"]),
            "too_small": bool(too_small[group]),
        }
        for group, row in table.iterrows()
    ]
    return {
        "by_group": by_group,
        "auc_gap": auc_gap,
        "auc_gap_groups": gap_groups,
        "equalized_odds_difference": eod,
        "too_small": [str(g) for g in table.index[too_small]],
        "single_class": [str(g) for g in table.index[single_class]],
        "notes": notes,
    }

