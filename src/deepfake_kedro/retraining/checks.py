"""The retraining checks and the decision.

Each check returns a JSON-ready ``CheckResult``: its value, threshold, whether it could be
evaluated, whether it triggers, and why. ``decide`` turns them into ``retrain: yes/no`` with
the reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from deepfake_kedro.retraining.champion import ChampionInfo, newest_captured_at
from deepfake_kedro.retraining.config import (
    DegradationConfig,
    DriftConfig,
    FreshnessConfig,
)
from deepfake_kedro.retraining.drift import domain_classifier_auc, mmd_squared, subsample
from deepfake_kedro.values import iso

logger = logging.getLogger(__name__)

LABEL_VALUES = {"real": 0, "fake": 1}
_DAY_S = 86400.0


@dataclass
class CheckResult:
    """Outcome of one check.

    Attributes:
        check: Name (``champion``, ``freshness``, ``degradation``, ``drift``).
        evaluated: Whether the check could be computed (enough data, champion present...).
        triggered: Whether it asks for a retraining.
        reason: One sentence saying why.
        value: The measured value (``None`` when not evaluated).
        threshold: The limit it was compared with.
        details: Further numbers (counts, ages, the other limits).
    """

    check: str
    evaluated: bool
    triggered: bool
    reason: str
    value: float | None = None
    threshold: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def check_champion(champion: ChampionInfo | None) -> CheckResult:
    """Trigger when there is no champion, or it lacks what the other checks need."""
    if champion is None:
        return CheckResult(
            "champion", True, True, "no champion is registered: train one", value=0.0
        )
    blocking = [
        p
        for p in champion.problems
        if "no recorded training data" in p or "cannot score" in p or "no training run" in p
    ]
    details = champion.summary()
    if blocking:
        return CheckResult(
            "champion",
            True,
            True,
            "; ".join(blocking) + ": retrain to get a champion with recorded training data",
            value=1.0,
            details=details,
        )
    return CheckResult(
        "champion",
        True,
        False,
        f"champion is version {champion.version} with its checkpoint and training data",
        value=1.0,
        details=details,
    )


def select_new_rows(current: pd.DataFrame, champion: ChampionInfo | None) -> pd.DataFrame:
    """Rows of the current manifest the champion was not trained on.

    By content hash when the champion's training manifest is known; otherwise rows captured
    after its newest training image (all rows without a champion or a date to go by).
    """
    if champion is None:
        return current.reset_index(drop=True)
    if champion.training_manifest is not None:
        seen = set(champion.training_manifest["content_hash"].astype(str))
        mask = ~current["content_hash"].astype(str).isin(seen)
        return current[mask].reset_index(drop=True)
    if champion.newest_captured_at is not None and "captured_at" in current.columns:
        times = pd.to_datetime(current["captured_at"], utc=True, errors="coerce", format="ISO8601")
        return current[times > pd.Timestamp(champion.newest_captured_at)].reset_index(drop=True)
    return current.reset_index(drop=True)


def check_freshness(
    current: pd.DataFrame,
    new_rows: pd.DataFrame,
    current_fingerprint: Mapping[str, Any],
    champion: ChampionInfo | None,
    config: FreshnessConfig,
    now: datetime,
) -> CheckResult:
    """Trigger on new labelled data once the champion is older than ``max_model_age_days``,
    or when its training data is older than ``max_data_age_days`` (if set)."""
    limit = config.max_model_age_days
    if not config.enabled:
        return CheckResult("freshness", False, False, "disabled (retraining.freshness.enabled)")
    if champion is None:
        return CheckResult(
            "freshness", False, False, "no champion to compare with", threshold=limit
        )
    model_age = (now - champion.created_at).total_seconds() / _DAY_S
    current_newest = newest_captured_at(current)
    data_age = (
        None
        if champion.newest_captured_at is None
        else (now - champion.newest_captured_at).total_seconds() / _DAY_S
    )
    fingerprint = current_fingerprint.get("fingerprint")
    details = {
        "model_age_days": round(model_age, 4),
        "max_model_age_days": limit,
        "champion_data_age_days": None if data_age is None else round(data_age, 4),
        "max_data_age_days": config.max_data_age_days,
        "n_new_images": int(len(new_rows)),
        "current_newest_captured_at": iso(current_newest),
        "champion_newest_captured_at": iso(champion.newest_captured_at),
        "current_fingerprint": fingerprint,
        "champion_fingerprint": champion.fingerprint,
        "data_changed": champion.fingerprint is None or fingerprint != champion.fingerprint,
    }
    reasons = []
    if len(new_rows) and model_age > limit:
        reasons.append(
            f"{len(new_rows)} new labelled images and the champion is {model_age:.1f} days old "
            f"(> max_model_age_days {limit:g})"
        )
    if config.max_data_age_days is not None and data_age is not None:
        if data_age > config.max_data_age_days:
            reasons.append(
                f"the champion's newest training image is {data_age:.1f} days old "
                f"(> max_data_age_days {config.max_data_age_days:g})"
            )
    if reasons:
        return CheckResult("freshness", True, True, "; ".join(reasons), model_age, limit, details)
    if len(new_rows):
        why = (
            f"{len(new_rows)} new labelled images, but the champion is only {model_age:.1f} "
            f"days old (<= max_model_age_days {limit:g})"
        )
    else:
        why = f"no new labelled data since the champion was trained ({model_age:.1f} days ago)"
    return CheckResult("freshness", True, False, why, model_age, limit, details)


def check_degradation(
    new_rows: pd.DataFrame,
    scores: np.ndarray | None,
    champion: ChampionInfo | None,
    config: DegradationConfig,
) -> CheckResult:
    """Trigger when the champion's AUC on new labelled data is more than
    ``max_relative_auc_drop`` below its recorded test AUC.

    Args:
        new_rows: New labelled rows (``label``).
        scores: The champion's fake probability of each new row (``None``: not scored).
        champion: The champion.
        config: Limits.
    """
    name = "degradation"
    if not config.enabled:
        return CheckResult(name, False, False, "disabled (retraining.degradation.enabled)")
    if champion is None:
        return CheckResult(name, False, False, "no champion to score new data with")
    if champion.test_auc is None:
        return CheckResult(
            name,
            False,
            False,
            f"champion version {champion.version} has no recorded test AUC (gate.test_auc) "
            "to compare with",
        )
    threshold = champion.test_auc * (1.0 - config.max_relative_auc_drop)
    labels = new_rows["label"].astype(str).str.strip().str.lower().map(LABEL_VALUES)
    counts = {k: int((labels == v).sum()) for k, v in LABEL_VALUES.items()}
    details: dict[str, Any] = {
        "champion_test_auc": champion.test_auc,
        "max_relative_auc_drop": config.max_relative_auc_drop,
        "n_new_images": int(len(new_rows)),
        "n_per_label": counts,
    }
    if len(new_rows) < config.min_samples or min(counts.values()) < config.min_per_class:
        return CheckResult(
            name,
            False,
            False,
            f"too little new labelled data to measure an AUC ({len(new_rows)} images, "
            f"{counts}; need {config.min_samples} with {config.min_per_class} of each label)",
            threshold=threshold,
            details=details,
        )
    if scores is None or len(scores) != len(new_rows):
        return CheckResult(
            name,
            False,
            False,
            "the champion could not score the new data (no checkpoint in its run)",
            threshold=threshold,
            details=details,
        )
    auc = float(roc_auc_score(labels.to_numpy(dtype=int), np.asarray(scores)))
    drop = (champion.test_auc - auc) / champion.test_auc if champion.test_auc > 0 else 0.0
    details["relative_auc_drop"] = round(drop, 6)
    if auc < threshold:
        why = (
            f"the champion's AUC on {len(new_rows)} new images is {auc:.4f}, {drop:.1%} below "
            f"its test AUC {champion.test_auc:.4f} (limit {config.max_relative_auc_drop:.1%})"
        )
        return CheckResult(name, True, True, why, auc, threshold, details)
    why = (
        f"the champion's AUC on {len(new_rows)} new images is {auc:.4f} (test AUC "
        f"{champion.test_auc:.4f}, limit {threshold:.4f})"
    )
    return CheckResult(name, True, False, why, auc, threshold, details)


def check_drift(
    reference: Mapping[str, np.ndarray], new: Mapping[str, np.ndarray], config: DriftConfig
) -> CheckResult:
    """Compare the embeddings of new images with those of the champion's training images.

    Args:
        reference: Per branch, ``[n_ref, d]`` embeddings of training images.
        new: Per branch, ``[n_new, d]`` embeddings of new images.
        config: Method, threshold and whether drift triggers.
    """
    name = "drift"
    threshold = (
        config.auc_threshold if config.method == "domain_classifier" else config.mmd_threshold
    )
    if not config.enabled:
        return CheckResult(name, False, False, "disabled (retraining.drift.enabled)")
    branches = sorted(set(reference) & set(new))
    n_ref = len(reference[branches[0]]) if branches else 0
    n_new = len(new[branches[0]]) if branches else 0
    details: dict[str, Any] = {
        "method": config.method,
        "n_reference": n_ref,
        "n_new": n_new,
        "triggers_retraining": config.trigger,
    }
    if not branches or min(n_ref, n_new) < config.min_samples:
        return CheckResult(
            name,
            False,
            False,
            f"too few images to measure drift ({n_ref} training, {n_new} new; need "
            f"{config.min_samples} each)",
            threshold=threshold,
            details=details,
        )
    rng = np.random.default_rng(config.seed)
    ref = subsample(
        np.concatenate([reference[b] for b in branches], axis=1), config.max_samples, rng
    )
    cur = subsample(np.concatenate([new[b] for b in branches], axis=1), config.max_samples, rng)
    if config.method == "domain_classifier":
        value = domain_classifier_auc(ref, cur, folds=config.folds, seed=config.seed)
        what = f"domain-classifier AUC {value:.4f}"
    else:
        value = mmd_squared(ref, cur)
        what = f"MMD² {value:.4f}"
    drifted = value >= threshold
    details["drifted"] = drifted
    if not drifted:
        return CheckResult(
            name,
            True,
            False,
            f"{what} < threshold {threshold:g}: no drift",
            value,
            threshold,
            details,
        )
    if config.trigger:
        return CheckResult(
            name,
            True,
            True,
            f"{what} >= threshold {threshold:g}: the new images drifted",
            value,
            threshold,
            details,
        )
    return CheckResult(
        name,
        True,
        False,
        f"{what} >= threshold {threshold:g}: drift reported only (retraining.drift.trigger "
        "is false)",
        value,
        threshold,
        details,
    )


def decide(
    checks: Iterable[CheckResult | Mapping[str, Any]],
    *,
    force: bool = False,
    now: datetime | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The retraining decision: ``retrain`` (bool), ``reasons`` and every check's result.

    Args:
        checks: The check results.
        force: Retrain regardless of the checks.
        now: Decision time (default: now, UTC).
        context: Extra JSON facts to record (champion, current data fingerprint).
    """
    results = [c.to_dict() if isinstance(c, CheckResult) else dict(c) for c in checks]
    triggered = [f"{r['check']}: {r['reason']}" for r in results if r["triggered"]]
    reasons = (["forced (kedro retrain --force / retraining.force)"] if force else []) + triggered
    retrain = bool(reasons)
    if not retrain:
        reasons = [
            "no check triggered: " + "; ".join(f"{r['check']}: {r['reason']}" for r in results)
        ]
    decision = {
        "retrain": retrain,
        "answer": "yes" if retrain else "no",
        "reasons": reasons,
        "forced": force,
        "decided_at": iso(now or datetime.now(UTC)),
        "checks": {r["check"]: r for r in results},
        **dict(context or {}),
    }
    logger.info("retrain: %s (%s)", decision["answer"], " | ".join(reasons))
    return decision


def decision_metrics(decision: Mapping[str, Any]) -> dict[str, float]:
    """The decision's key numbers: ``retrain``, each check's ``<check>_triggered`` and value."""
    out = {"retrain": float(decision["retrain"])}
    for name, result in decision["checks"].items():
        out[f"{name}_triggered"] = float(result["triggered"])
        if result.get("value") is not None and np.isfinite(result["value"]):
            out[f"{name}_value"] = float(result["value"])
    return out
