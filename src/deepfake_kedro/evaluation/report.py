"""The validation report: one self-contained HTML page, and its figures for MLflow.

:func:`render_validation_report` turns the JSON-ready validation results (the same dict the
pipeline saves as JSON) into an HTML document that opens offline: CSS is inline, figures are
PNGs embedded as ``data:`` URIs, and nothing links outside the file. Every user-provided string
is HTML-escaped (jinja2 autoescape). Every section except the verdict is optional; a missing or
malformed section is left out with a note rather than breaking the report.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from deepfake_kedro.evaluation.robustness import plot_robustness
from deepfake_kedro.values import finite_or_none

logger = logging.getLogger(__name__)

METRIC_LABELS: dict[str, str] = {
    "auc": "ROC AUC",
    "average_precision": "Average precision",
    "accuracy": "Accuracy",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall (fakes caught)",
    "eer": "Equal error rate",
    "brier": "Brier score",
    "ece": "Expected calibration error",
    "threshold": "Decision threshold",
    "n": "Images",
    "n_real": "Real images",
    "n_fake": "Fake images",
}
_CI_KEYS = ("auc_ci_low", "auc_ci_high")
_FIGURE_DPI = 110

# The page itself: a package file (src/deepfake_kedro/evaluation/templates/), installed with
# the package (pyproject's package-data).
TEMPLATE = "validation_report.html.j2"
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("deepfake_kedro.evaluation", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (also for booleans: they are not measurements)."""
    return None if isinstance(value, bool) else finite_or_none(value)


def _fmt(value: Any) -> str:
    """Display form of a table cell (numbers to 4 decimals, ``None`` as a dash)."""
    if value is None:
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return "n/a"
        if number.is_integer() and abs(number) >= 1000:
            return str(int(number))
        return f"{number:.4f}" if abs(number) < 1000 else f"{number:.4g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _records(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, list | tuple):
        return [row for row in value if isinstance(row, Mapping)]
    return []


def _short(value: Any) -> str:
    """A number in its shortest form (severities: ``30``, ``0.5``)."""
    number = _number(value)
    return _fmt(value) if number is None else f"{number:g}"


def _table(
    records: Iterable[Mapping[str, Any]],
    preferred: list[str],
    hidden: Iterable[str] = (),
    short: Iterable[str] = (),
) -> dict[str, Any]:
    """Columns (preferred first, then any extra keys) and formatted rows of a list of dicts."""
    records = list(records)
    hidden, short = set(hidden), set(short)
    columns = [c for c in preferred if any(c in r for r in records)]
    for record in records:
        columns += [k for k in record if k not in columns and k not in hidden]
    rows = [
        [(_short if c in short else _fmt)(record.get(c)) for c in columns] for record in records
    ]
    return {"columns": columns, "rows": rows}


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first key present (accepts both spellings of a field)."""
    return next((mapping[k] for k in keys if k in mapping), None)


def _notes(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def _plain(text: Any) -> str:
    """A string matplotlib draws literally (no mathtext)."""
    return str(text).replace("$", r"\$")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _xy(x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        xs = np.asarray(x, dtype=float)
        ys = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        logger.warning("validation report: %s is not numeric; figure left out", what)
        return None
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 2:
        logger.warning(
            "validation report: %s needs two equal-length arrays of 2+ points; figure left out",
            what,
        )
        return None
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _roc_figure(roc: Mapping[str, Any], metrics: Mapping[str, Any]) -> Figure | None:
    if not roc:
        return None
    points = _xy(roc.get("fpr"), roc.get("tpr"), "the ROC curve")
    if points is None:
        return None
    fig = _new_figure(4.6, 4.2)
    ax = fig.add_subplot()
    auc = _number(metrics.get("auc"))
    ax.plot(*points, color="tab:blue", label=f"AUC {auc:.3f}" if auc is not None else "model")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(xlabel="False positive rate (real flagged fake)", ylabel="True positive rate")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), title="ROC curve")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def _pr_figure(pr: Mapping[str, Any], metrics: Mapping[str, Any]) -> Figure | None:
    if not pr:
        return None
    points = _xy(pr.get("recall"), pr.get("precision"), "the precision-recall curve")
    if points is None:
        return None
    fig = _new_figure(4.6, 4.2)
    ax = fig.add_subplot()
    ap = _number(metrics.get("average_precision"))
    ax.plot(*points, color="tab:purple", label=f"AP {ap:.3f}" if ap is not None else "model")
    n, n_fake = _number(metrics.get("n")), _number(metrics.get("n_fake"))
    if n and n_fake is not None:
        ax.axhline(n_fake / n, color="grey", linestyle=":", label="share of fakes")
    ax.set(xlabel="Recall (fakes caught)", ylabel="Precision", title="Precision-recall curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return fig


def _calibration_figure(cal: Mapping[str, Any], metrics: Mapping[str, Any]) -> Figure | None:
    if not cal:
        return None
    predicted = _first(cal, "predicted", "mean_predicted")
    observed = _first(cal, "observed", "observed_frequency")
    points = _xy(predicted, observed, "the calibration curve")
    if points is None:
        return None
    fig = _new_figure(4.6, 4.8)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ece = _number(metrics.get("ece"))
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    top.plot(*points, marker="o", color="tab:orange", label="model")
    title = "Reliability diagram" + (f" (ECE {ece:.3f})" if ece is not None else "")
    top.set(ylabel="Observed share of fakes", xlim=(0, 1), ylim=(0, 1.01), title=title)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    centers = _first(cal, "bin_centers", "bin_centres")
    counts = _xy(centers, cal.get("counts"), "the calibration bin counts")
    if counts is not None and len(counts[0]):
        centers, heights = counts
        width = 0.9 * (float(np.min(np.diff(np.sort(centers)))) if len(centers) > 1 else 0.1)
        bottom.bar(centers, heights, width=width, color="tab:orange", alpha=0.6)
    bottom.set(xlabel="Predicted probability of fake", ylabel="Images")
    bottom.grid(alpha=0.3)
    return fig


def _robustness_figure(robustness: Mapping[str, Any]) -> Figure | None:
    rows = _records(robustness.get("table"))
    if not rows:
        return None
    table = pd.DataFrame(rows)
    if not {"perturbation", "severity", "auc"} <= set(table.columns):
        logger.warning("validation report: robustness rows lack perturbation/severity/auc")
        return None
    if "drop" not in table.columns:
        table["drop"] = math.nan
    clean = _number(_mapping(robustness.get("summary")).get("clean_auc"))
    return plot_robustness(table, clean_auc=clean)


def _fairness_figure(fairness: Mapping[str, Any]) -> Figure | None:
    attributes = {
        name: _records(_mapping(info).get("by_group"))
        for name, info in _mapping(fairness.get("attributes")).items()
    }
    attributes = {name: rows for name, rows in attributes.items() if rows}
    if not attributes:
        return None
    metrics = [("auc", "AUC", "tab:blue"), ("fpr", "FPR", "tab:red"), ("fnr", "FNR", "tab:orange")]
    widest = max(len(rows) for rows in attributes.values())
    fig = _new_figure(max(5.0, 1.1 * widest + 2.0), 3.2 * len(attributes))
    axes = fig.subplots(len(attributes), 1, squeeze=False).ravel()
    for ax, (name, rows) in zip(axes, attributes.items(), strict=True):
        x = np.arange(len(rows))
        width = 0.8 / len(metrics)
        for i, (key, label, colour) in enumerate(metrics):
            heights = [_number(row.get(key)) for row in rows]
            heights = [np.nan if h is None else h for h in heights]
            bars = ax.bar(x + (i - 1) * width, heights, width, label=label, color=colour)
            for bar, row in zip(bars, rows, strict=True):
                if row.get("too_small"):
                    bar.set_alpha(0.35)
                    bar.set_hatch("//")
        ticks = [
            _plain(row.get("group")) + ("\n(too small)" if row.get("too_small") else "")
            for row in rows
        ]
        ax.set_xticks(x, ticks)
        ax.set(ylim=(0, 1.05), ylabel="rate", title=f"By {_plain(name)}")
        handles = [Patch(color=colour, label=label) for _, label, colour in metrics]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        ax.grid(alpha=0.3, axis="y")
    return fig


def report_figures(results: Mapping[str, Any]) -> dict[str, Figure]:
    """The report's figures, for logging as images: those of ``roc``, ``pr``, ``calibration``,
    ``robustness`` and ``fairness`` whose data is present.

    Args:
        results: The validation results (see :func:`render_validation_report`).
    """
    metrics = _mapping(results.get("metrics"))
    curves = _mapping(results.get("curves"))
    figures = {
        "roc": _roc_figure(_mapping(curves.get("roc")), metrics),
        "pr": _pr_figure(_mapping(curves.get("pr")), metrics),
        "calibration": _calibration_figure(_mapping(curves.get("calibration")), metrics),
        "robustness": _robustness_figure(_mapping(results.get("robustness"))),
        "fairness": _fairness_figure(_mapping(results.get("fairness"))),
    }
    return {name: fig for name, fig in figures.items() if fig is not None}


def _png_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    # No "Software" metadata: the PNG then holds no URL and is byte-stable across runs.
    fig.savefig(buffer, format="png", dpi=_FIGURE_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _verdict_view(results: Mapping[str, Any]) -> dict[str, Any]:
    verdict = results.get("verdict")
    if not isinstance(verdict, Mapping) or not isinstance(verdict.get("passed"), bool | np.bool_):
        raise ValueError(
            "validation results need a 'verdict' dict with a boolean 'passed' (from the gate); "
            f"got {type(verdict).__name__}: {verdict!r:.200}"
        )
    checks = []
    for check in _records(verdict.get("checks")):
        passed = check.get("passed")
        status = "skipped" if passed is None else ("pass" if passed else "fail")
        comparison = check.get("comparison")
        limit = check.get("limit")
        checks.append(
            {
                "name": _fmt(check.get("name")),
                "value": _fmt(check.get("value")),
                "limit": " ".join(_fmt(v) for v in (comparison, limit) if v is not None) or "—",
                "status": status,
                "reason": "" if check.get("reason") is None else str(check.get("reason")),
            }
        )
    return {
        "passed": bool(verdict["passed"]),
        "summary": "" if verdict.get("summary") is None else str(verdict["summary"]),
        "checks": checks,
        "n_failed": sum(c["status"] == "fail" for c in checks),
    }


def _metrics_view(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in metrics.items():
        if key in _CI_KEYS:
            continue
        text = _fmt(value)
        if key == "auc":
            low, high = (_number(metrics.get(k)) for k in _CI_KEYS)
            if low is not None and high is not None:
                text += f"  (95% CI {low:.4f} – {high:.4f})"
        rows.append((METRIC_LABELS.get(key, str(key)), text))
    order = {label: i for i, label in enumerate(METRIC_LABELS.values())}
    return sorted(rows, key=lambda row: order.get(row[0], len(order)))


def _robustness_view(robustness: Any) -> dict[str, Any] | None:
    if not isinstance(robustness, Mapping):
        return None
    if robustness.get("skipped") is not None:
        return {"skipped": str(robustness["skipped"])}
    summary = _mapping(robustness.get("summary"))
    per = _mapping(summary.get("per_perturbation"))
    reported = _mapping(summary.get("reported_only"))
    family = _records(robustness.get("by_family"))
    return {
        "skipped": None,
        "summary": [
            ("Clean AUC", _fmt(summary.get("clean_auc"))),
            ("Mean AUC drop (gated levels)", _fmt(summary.get("mean_drop"))),
            ("Worst AUC drop (gated levels)", _fmt(summary.get("worst_drop"))),
            ("Worst case (gated levels)", _fmt(summary.get("worst_case"))),
        ]
        + (
            [
                ("Mean AUC drop (reported only)", _fmt(reported.get("mean_drop"))),
                ("Worst AUC drop (reported only)", _fmt(reported.get("worst_drop"))),
                ("Worst case (reported only)", _fmt(reported.get("worst_case"))),
            ]
            if reported.get("n_conditions")
            else []
        )
        + [(f"Mean drop: {name}", _fmt(value)) for name, value in per.items()],
        "table": _table(
            _records(robustness.get("table")),
            ["perturbation", "severity", "auc", "drop", "n", "gated"],
            short=["severity"],
        ),
        "family_table": _table(
            family,
            ["perturbation", "severity", "manipulation", "auc", "clean_auc", "drop", "gated"],
            short=["severity"],
        )
        if family
        else None,
    }


def _worst(fairness: Mapping[str, Any], key: str) -> str:
    """A max gap, with the attribute it comes from when known."""
    text = _fmt(fairness.get(key))
    attribute = fairness.get(f"{key}_attribute")
    return f"{text} ({attribute})" if attribute is not None else text


def _fairness_view(fairness: Any) -> dict[str, Any] | None:
    if not isinstance(fairness, Mapping):
        return None
    if fairness.get("skipped") is not None:
        return {"skipped": str(fairness["skipped"])}
    attributes = []
    for name, info in _mapping(fairness.get("attributes")).items():
        info = _mapping(info)
        records = _records(info.get("by_group"))
        table = _table(
            records,
            ["group", "count", "auc", "fpr", "fnr", "selection_rate"],
            hidden=["too_small"],
        )
        table["small"] = [bool(r.get("too_small")) for r in records]
        too_small = info.get("too_small") or []
        attributes.append(
            {
                "name": str(name),
                "table": table,
                "auc_gap": _fmt(info.get("auc_gap")),
                "eod": _fmt(info.get("equalized_odds_difference")),
                "too_small": ", ".join(_notes(too_small)),
                "notes": _notes(info.get("notes")),
            }
        )
    return {
        "skipped": None,
        "summary": [
            ("Largest AUC gap between groups", _worst(fairness, "max_auc_gap")),
            (
                "Largest equalized-odds difference",
                _worst(fairness, "max_equalized_odds_difference"),
            ),
            ("Smallest group size counted", _fmt(fairness.get("min_group_size"))),
        ]
        + ([("Threshold", _fmt(fairness["threshold"]))] if "threshold" in fairness else []),
        "attributes": attributes,
        "notes": _notes(fairness.get("notes")),
    }


def _lineage_view(lineage: Any) -> dict[str, Any] | None:
    if not isinstance(lineage, Mapping) or not lineage:
        return None
    labels = {
        "dataset_fingerprint": "Dataset fingerprint",
        "training_run_id": "Training run id",
        "model_uri": "Model URI",
        "git_commit": "Git commit",
        "trained_at": "Model trained at",
        "reported_at": "Report created at",
    }
    rows = [(labels[k], _fmt(lineage[k])) for k in labels if k in lineage]
    rows += [(str(k), _fmt(v)) for k, v in lineage.items() if k not in labels and k != "backbones"]
    backbones = []
    for branch, info in _mapping(lineage.get("backbones")).items():
        info = info if isinstance(info, Mapping) else {"arch": info}
        other = ", ".join(f"{k}={_fmt(v)}" for k, v in info.items() if k not in ("arch", "weights"))
        backbones.append((str(branch), _fmt(info.get("arch")), _fmt(info.get("weights")), other))
    return {"rows": rows, "backbones": backbones}


def render_validation_report(results: Mapping[str, Any]) -> str:
    """Render the validation results as one self-contained HTML document.

    Args:
        results: JSON-ready dict with ``verdict`` (required) and optionally ``metrics``,
            ``by_family``, ``curves`` (``roc``, ``pr``, ``calibration``), ``robustness``,
            ``fairness`` and ``lineage``, as produced by the validation pipeline.

    Returns:
        The HTML text: inline CSS, figures as embedded PNGs, no external links.

    Raises:
        ValueError: if ``results`` has no verdict with a boolean ``passed``.
    """
    if not isinstance(results, Mapping):
        raise ValueError(f"validation results must be a dict, got {type(results).__name__}")
    verdict = _verdict_view(results)
    figures = report_figures(results)
    images = {name: _png_data_uri(fig) for name, fig in figures.items()}
    lineage = _mapping(results.get("lineage"))
    by_family = _records(results.get("by_family"))
    html = _ENV.get_template(TEMPLATE).render(
        verdict=verdict,
        metrics=_metrics_view(_mapping(results.get("metrics"))),
        by_family=_table(by_family, ["manipulation", "n", "auc", "recall"]) if by_family else None,
        curve_images=[images[k] for k in ("roc", "pr", "calibration") if k in images],
        robustness=_robustness_view(results.get("robustness")),
        fairness=_fairness_view(results.get("fairness")),
        lineage=_lineage_view(lineage),
        images=images,
        created_at=_fmt(lineage.get("reported_at")) if "reported_at" in lineage else None,
        run_id=_fmt(lineage.get("training_run_id")) if "training_run_id" in lineage else None,
    )
    logger.info(
        "validation report: %s, %d figures, %.0f kB",
        "PASSED" if verdict["passed"] else "FAILED",
        len(images),
        len(html) / 1024,
    )
    return html
