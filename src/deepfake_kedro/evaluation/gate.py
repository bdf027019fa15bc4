"""Registration gate: compare the validation results with the configured limits.

``evaluate_gate`` returns the verdict the registration pipeline reads: ``passed`` and one
record per check with the value, the limit and a human reason. A check whose input was not
computed (robustness disabled, too few groups for a fairness gap) is skipped, not failed; a
missing or NaN value where one was expected fails.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from deepfake_kedro.evaluation.config import GateConfig
from deepfake_kedro.evaluation.performance import scalar_test_metrics

logger = logging.getLogger(__name__)


def evaluate_gate(
    metrics: Mapping[str, Any],
    robustness: Mapping[str, Any] | None,
    fairness: Mapping[str, Any] | None,
    config: GateConfig | Mapping[str, Any],
) -> dict[str, Any]:
    """Check test metrics, robustness and fairness against the gate's limits.

    Args:
        metrics: Test metrics from ``binary_metrics`` (``auc`` and any gated keys).
        robustness: Summary with ``mean_drop``, ``worst_drop`` and ``worst_case``; ``None``
            when robustness was not evaluated (its checks are skipped).
        fairness: Output of ``fairness_report``; ``None`` when not audited (skipped).
        config: The limits (a ``GateConfig`` or its params dict).

    Returns:
        ``{"passed", "checks": [{"name", "value", "limit", "comparison", "passed",
        "reason"}], "failed": [reasons], "skipped": [reasons], "summary"}``; a skipped check
        has ``passed`` None. JSON-ready (NaN values become None).
    """
    if not isinstance(config, GateConfig):
        config = GateConfig.model_validate(config)
    checks = [
        _check(
            "auc",
            metrics.get("auc"),
            config.validation_threshold,
            ">=",
            "test AUC",
            "validation_threshold",
        ),
    ]
    for key, limit in config.min_metrics.items():
        checks.append(
            _check(key, metrics.get(key), limit, ">=", f"test {key}", f"min_metrics.{key}")
        )
    for key, limit in config.max_metrics.items():
        checks.append(
            _check(key, metrics.get(key), limit, "<=", f"test {key}", f"max_metrics.{key}")
        )
    checks += _robustness_checks(robustness, config)
    checks += _fairness_checks(fairness, config)

    failed = [c["reason"] for c in checks if c["passed"] is False]
    skipped = [c["reason"] for c in checks if c["passed"] is None]
    passed = not failed
    if passed:
        summary = f"PASSED: {len(checks) - len(skipped)} checks passed, {len(skipped)} skipped"
        logger.debug("Validation gate %s", summary)
    else:
        summary = f"FAILED {len(failed)} of {len(checks)} checks: " + "; ".join(failed)
        logger.debug("Validation gate %s", summary)
    return {
        "passed": passed,
        "checks": checks,
        "failed": failed,
        "skipped": skipped,
        "summary": summary,
    }


def _robustness_checks(
    robustness: Mapping[str, Any] | None, config: GateConfig
) -> list[dict[str, Any]]:
    limits = {
        "mean_robustness_drop": config.max_mean_robustness_drop,
        "worst_robustness_drop": config.max_worst_robustness_drop,
    }
    if robustness is None:
        reason = "robustness not evaluated (disabled); check skipped"
        return [_skipped(name, limit, "<=", reason) for name, limit in limits.items()]
    if robustness.get("n_gated_levels") == 0:
        reason = (
            "every evaluated perturbation level is reported only "
            "(validation.robustness.reported_only); check skipped"
        )
        return [_skipped(name, limit, "<=", reason) for name, limit in limits.items()]
    worst_case = robustness.get("worst_case") or "unknown perturbation"
    worst = _as_number(robustness.get("worst_drop"))
    worst_text = "n/a" if worst is None or math.isnan(worst) else _fmt(worst)
    # Enabled but empty: every perturbed condition failed to give an AUC. That is a failure.
    not_computed = "was not computed (no perturbed condition gave a finite AUC)"
    return [
        _check(
            "mean_robustness_drop",
            robustness.get("mean_drop"),
            config.max_mean_robustness_drop,
            "<=",
            "mean AUC drop under the gated perturbations",
            "max_mean_robustness_drop",
            detail=f" (worst: {worst_case}, {worst_text})",
            missing=not_computed,
        ),
        _check(
            "worst_robustness_drop",
            robustness.get("worst_drop"),
            config.max_worst_robustness_drop,
            "<=",
            "worst AUC drop under the gated perturbations",
            "max_worst_robustness_drop",
            detail=f" ({worst_case})",
            missing=not_computed,
        ),
    ]


def _fairness_checks(
    fairness: Mapping[str, Any] | None, config: GateConfig
) -> list[dict[str, Any]]:
    gaps = [
        ("auc_gap", config.max_auc_gap, "largest per-group AUC gap"),
        (
            "equalized_odds_difference",
            config.max_equalized_odds_difference,
            "largest equalized-odds difference",
        ),
    ]
    if fairness is None:
        reason = "fairness not audited; check skipped"
        return [_skipped(f"max_{name}", limit, "<=", reason) for name, limit, _ in gaps]
    checks = []
    attributes = fairness.get("attributes") or {}
    for name, limit, what in gaps:
        value = fairness.get(f"max_{name}")
        attribute = fairness.get(f"max_{name}_attribute")
        if value is None:
            reason = (
                f"{what} not computed: no group attribute has 2 groups of at least "
                f"{fairness.get('min_group_size', '?')} test images with both classes; "
                "check skipped"
            )
            checks.append(_skipped(f"max_{name}", limit, "<=", reason))
            continue
        detail = f" ({attribute})" if attribute else ""
        pair = (
            (attributes.get(attribute) or {}).get("auc_gap_groups") if name == "auc_gap" else None
        )
        if pair:
            detail = f" ({attribute}: {pair[0]} vs {pair[1]})"
        checks.append(_check(f"max_{name}", value, limit, "<=", what, f"max_{name}", detail=detail))
    return checks


def _check(
    name: str,
    value: Any,
    limit: float,
    comparison: str,
    what: str,
    limit_name: str,
    *,
    detail: str = "",
    missing: str = "is missing from the validation results",
) -> dict[str, Any]:
    """One gate check: ``value`` must be ``>=`` (or ``<=``) ``limit``."""
    number = _as_number(value)
    if number is None:
        passed, reason = False, f"{what} {missing}"
    elif math.isnan(number):
        passed, reason = False, f"{what} is NaN, so {limit_name} {_fmt(limit)} is not met"
    else:
        passed = number >= limit if comparison == ">=" else number <= limit
        shown = _fmt_against(number, limit)
        if passed:
            verb = "meets" if comparison == ">=" else "is within"
        else:
            verb = "is below" if comparison == ">=" else "exceeds"
        reason = f"{what} {shown} {verb} {limit_name} {_fmt(limit)}{detail}"
    return {
        "name": name,
        "value": None if number is None or math.isnan(number) else number,
        "limit": limit,
        "comparison": comparison,
        "passed": passed,
        "reason": reason,
    }


def _skipped(name: str, limit: float, comparison: str, reason: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": None,
        "limit": limit,
        "comparison": comparison,
        "passed": None,
        "reason": reason,
    }


def _as_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: float, digits: int = 3) -> str:
    """A number with at most ``digits`` decimals and no trailing zeros (0.950 -> 0.95)."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _fmt_against(value: float, limit: float) -> str:
    """``value`` with enough decimals that its rounding does not flip the comparison."""
    for digits in (3, 4, 5, 6):
        rounded = float(_fmt(value, digits))
        if (rounded >= limit) == (value >= limit) and (rounded <= limit) == (value <= limit):
            break
    return _fmt(value, digits)


def validation_metric_values(results: Mapping[str, Any]) -> dict[str, Any]:
    """The gate's numbers as MLflow metrics: ``test_<metric>``, ``robustness_*``,
    ``fairness_*`` and ``gate_passed`` (``{name: {"value", "step"}}``); registration tags
    the version with the same names."""
    values: dict[str, float] = dict(scalar_test_metrics(results["metrics"]))
    summary = results["robustness"].get("summary") or {}
    for key in ("mean_drop", "worst_drop"):
        if summary.get(key) is not None:
            values[f"robustness_{key}"] = summary[key]
    for key in ("max_auc_gap", "max_equalized_odds_difference"):
        if results["fairness"].get(key) is not None:
            values[f"fairness_{key}"] = results["fairness"][key]
    values["gate_passed"] = float(results["verdict"]["passed"])
    return {k: {"value": float(v), "step": 0} for k, v in values.items() if math.isfinite(float(v))}
