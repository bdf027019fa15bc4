"""Data-quality report of a validated manifest: a JSON-ready dict and a summary figure."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deepfake_kedro.ingestion.validation import small_group_lines, small_groups
from deepfake_kedro.values import iso

_LABELS = ("real", "fake")
_LABEL_COLOURS = {"real": "tab:blue", "fake": "tab:red"}
_MAX_SIZES_LISTED = 20
_HISTOGRAM_BINS = 20


def data_quality_report(
    valid: pd.DataFrame,
    problems: pd.DataFrame,
    group_columns: list[str],
    min_group_size: int | None = None,
) -> dict[str, Any]:
    """Summarise the validated manifest and the problems found (JSON-serialisable).

    Args:
        valid: Valid rows from ``validate_manifest`` (``label``, ``manipulation``,
            ``width``, ``height``, ``file_size``, ``captured_at``...).
        problems: Problems table from ``validate_manifest`` (``row``, ``check``...).
        group_columns: Group columns to count (``data_ingestion.group_columns``).
        min_group_size: ``data_ingestion.min_group_size``: smaller groups are listed as too
            small to judge (their rows are kept); ``None`` lists none.

    Returns:
        A dict with ``totals``, ``labels``, ``class_balance``, ``manipulations``,
        ``sources``, ``groups``, ``small_groups`` (``min_group_size`` and column -> {value:
        rows}), ``warnings`` (one sentence each), ``image_size`` and ``captured_at`` sections.
    """
    small = (
        small_groups(valid, group_columns, min_group_size)
        if min_group_size is not None
        else {}
    )
    n_valid = int(len(valid))
    rejected = int(problems["row"].nunique()) if len(problems) else 0
    found = _counts(valid["label"]) if "label" in valid.columns else {}
    # real and fake always present and first; anything else (unvalidated input) after them
    labels = {label: found.get(label, 0) for label in _LABELS}
    labels.update({k: v for k, v in found.items() if k not in labels})
    n_fake = labels.get("fake", 0)
    return {
        "totals": {
            "rows": n_valid + rejected,
            "valid": n_valid,
            "rejected_rows": rejected,
            "problems": int(len(problems)),
            "problems_by_check": _counts(problems["check"]) if len(problems) else {},
        },
        "labels": labels,
        "class_balance": {
            "fake_share": n_fake / n_valid if n_valid else None,
            "real_share": labels.get("real", 0) / n_valid if n_valid else None,
        },
        "manipulations": _counts(valid["manipulation"]) if "manipulation" in valid else {},
        "sources": int(valid["source_id"].nunique()) if "source_id" in valid else 0,
        "groups": {
            column: _group_counts(valid, column) for column in group_columns if column in valid
        },
        "small_groups": {"min_group_size": min_group_size, "groups": small},
        "warnings": small_group_lines(small, min_group_size) if min_group_size else [],
        "image_size": _image_sizes(valid),
        "captured_at": _captured_at(valid),
    }


def _counts(values: pd.Series) -> dict[str, int]:
    counts = values.astype(str).value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def _group_counts(valid: pd.DataFrame, column: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for value, part in valid.groupby(valid[column].astype(str), sort=True):
        by_label = part["label"].value_counts() if "label" in part else pd.Series(dtype=int)
        n = int(len(part))
        result[str(value)] = {
            "n": n,
            **{label: int(by_label.get(label, 0)) for label in _LABELS},
            "fake_share": int(by_label.get("fake", 0)) / n,
        }
    return result


def _stats(values: pd.Series) -> dict[str, float | int | None]:
    if values.empty:
        return {"min": None, "median": None, "mean": None, "max": None}
    return {
        "min": _number(values.min()),
        "median": _number(values.median()),
        "mean": _number(values.mean()),
        "max": _number(values.max()),
    }


def _number(value: Any) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else value


def _image_sizes(valid: pd.DataFrame) -> dict[str, Any]:
    if not {"width", "height"} <= set(valid.columns) or valid.empty:
        return {}
    width, height = valid["width"].astype(int), valid["height"].astype(int)
    sizes = (width.astype(str) + "x" + height.astype(str)).value_counts()
    shorter = np.minimum(width.to_numpy(), height.to_numpy())
    bins = min(_HISTOGRAM_BINS, max(1, len(np.unique(shorter))))
    counts, edges = np.histogram(shorter, bins=bins)
    section: dict[str, Any] = {
        "width": _stats(width),
        "height": _stats(height),
        "n_distinct_sizes": int(len(sizes)),
        "sizes": {str(k): int(v) for k, v in sizes.head(_MAX_SIZES_LISTED).items()},
        "shorter_side_histogram": {
            "bin_edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
        },
    }
    if len(sizes) > _MAX_SIZES_LISTED:
        section["sizes"]["other"] = int(sizes.iloc[_MAX_SIZES_LISTED:].sum())
    if "file_size" in valid.columns:
        file_size = valid["file_size"].astype("int64")
        section["file_size_bytes"] = _stats(file_size) | {"total": int(file_size.sum())}
    return section


def _captured_at(valid: pd.DataFrame) -> dict[str, Any]:
    if "captured_at" not in valid.columns:
        return {"oldest": None, "newest": None}
    times = pd.to_datetime(valid["captured_at"], utc=True, errors="coerce", format="ISO8601")
    times = times.dropna()
    section: dict[str, Any] = {
        "oldest": iso(times.min()) if len(times) else None,
        "newest": iso(times.max()) if len(times) else None,
    }
    if "captured_at_source" in valid.columns:
        section["by_source"] = _counts(valid["captured_at_source"])
    return section


def plot_data_quality(report: dict[str, Any]) -> Figure:
    """Draw a multi-panel summary of a data-quality report.

    Args:
        report: Output of :func:`data_quality_report`.

    Returns:
        A matplotlib Figure (built without pyplot, safe in worker threads and headless runs).
    """
    panels = [_plot_labels, _plot_manipulations, _plot_sizes]
    panels += [
        (lambda ax, r, c=column: _plot_group(ax, r, c)) for column in report.get("groups", {})
    ]
    if report.get("totals", {}).get("problems_by_check"):
        panels.append(_plot_problems)
    ncols = 3
    nrows = math.ceil(len(panels) / ncols)
    figure = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
    totals = report.get("totals", {})
    figure.suptitle(
        f"Data quality: {totals.get('valid', 0)} valid of {totals.get('rows', 0)} rows, "
        f"{totals.get('rejected_rows', 0)} rejected"
    )
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, draw in zip(axes, panels, strict=False):
        draw(ax, report)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return figure


def _bar(ax: Any, counts: dict[str, int], title: str, colours: list[str] | None = None) -> None:
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color=colours)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel("images")


def _plot_labels(ax: Any, report: dict[str, Any]) -> None:
    labels = report.get("labels", {})
    share = report.get("class_balance", {}).get("fake_share")
    title = "Labels" + (f" (fake share {share:.0%})" if share is not None else "")
    _bar(ax, labels, title, [_LABEL_COLOURS.get(k, "tab:gray") for k in labels])


def _plot_manipulations(ax: Any, report: dict[str, Any]) -> None:
    _bar(ax, report.get("manipulations", {}), "Manipulations")


def _plot_problems(ax: Any, report: dict[str, Any]) -> None:
    _bar(ax, report["totals"]["problems_by_check"], "Problems by check", ["tab:orange"])
    ax.set_xlabel("problems")


def _plot_group(ax: Any, report: dict[str, Any], column: str) -> None:
    groups = report["groups"][column]
    names = list(groups)
    left = np.zeros(len(names))
    for label in _LABELS:
        values = np.array([groups[n].get(label, 0) for n in names], dtype=float)
        ax.barh(names, values, left=left, color=_LABEL_COLOURS[label], label=label)
        left += values
    ax.invert_yaxis()
    small = report.get("small_groups", {})
    n_small = len(small.get("groups", {}).get(column, {}))
    note = f" ({n_small} below {small['min_group_size']})" if n_small else ""
    ax.set_title(f"Group {column} by label{note}")
    ax.set_xlabel("images")
    if names:
        ax.legend(loc="lower right", fontsize="small")


def _plot_sizes(ax: Any, report: dict[str, Any]) -> None:
    histogram = report.get("image_size", {}).get("shorter_side_histogram")
    ax.set_title("Shorter image side")
    ax.set_xlabel("pixels")
    ax.set_ylabel("images")
    if not histogram:
        return
    edges = np.asarray(histogram["bin_edges"])
    ax.stairs(histogram["counts"], edges, fill=True, color="tab:green")
