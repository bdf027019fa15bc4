"""Nodes of the validation pipeline: adapters over :mod:`deepfake_kedro.evaluation`."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
from sklearn.metrics import roc_auc_score

from deepfake_kedro.evaluation.config import ValidationConfig
from deepfake_kedro.evaluation.fairness import fairness_report
from deepfake_kedro.evaluation.gate import evaluate_gate, validation_metric_values
from deepfake_kedro.evaluation.performance import measure_performance
from deepfake_kedro.evaluation.perturbations import PerturbationViews, perturbed_views
from deepfake_kedro.evaluation.report import render_validation_report
from deepfake_kedro.evaluation.robustness import (
    RobustnessConfig,
    perturbation_grid,
    robustness_by_family,
    robustness_summary,
    robustness_table,
    select_images,
)
from deepfake_kedro.features import ExtractionConfig, FeatureCacheRoot
from deepfake_kedro.inference.policy import score_evaluated_rows, score_rows
from deepfake_kedro.io import ImageStore
from deepfake_kedro.training.checkpoint import lineage as checkpoint_lineage
from deepfake_kedro.values import utc_now

logger = logging.getLogger(__name__)

def score_model_inputs(
    split_manifest: pd.DataFrame,
    fusion_checkpoint: dict[str, Any],
    raw_images: ImageStore,
    runtime: ExtractionConfig,
    **feature_caches: FeatureCacheRoot,
) -> pd.DataFrame:
    """Score the validation and test rows with the model, through the feature caches.

    The scoring policy (:mod:`deepfake_kedro.inference.policy`): features cached for the
    checkpoint's backbones are loaded; images they lack (a registered version with other
    backbones, ``--params model_uri=...``) are extracted once, into the cache.

    Args:
        split_manifest: Manifest with ``split``, ``label`` and ``content_hash``.
        fusion_checkpoint: The model to score with.
        raw_images: Store the image paths are relative to.
        runtime: Extraction settings.
        **feature_caches: Each branch's feature-cache root, keyed by branch.

    Returns:
        The val/test manifest rows with ``y`` (1 = fake) and ``score`` (fake probability).
    """
    scores, _ = score_evaluated_rows(
        fusion_checkpoint, split_manifest, raw_images, feature_caches, runtime
    )
    return scores


def evaluate_performance(model_scores: pd.DataFrame, params: ValidationConfig) -> dict[str, Any]:
    """Choose the operating threshold on val, then measure the test split with it.

    Returns:
        ``threshold``, ``threshold_method``, ``metrics`` (test), ``by_family`` and ``curves``.
    """
    performance = measure_performance(model_scores, params)
    metrics = performance["metrics"]
    logger.info(
        "Test AUC %.4f [%.4f, %.4f], EER %.4f at threshold %.4f (chosen on val by %s)",
        metrics["auc"],
        metrics["auc_ci_low"],
        metrics["auc_ci_high"],
        metrics["eer"],
        performance["threshold"],
        params.threshold_method,
    )
    return performance


def evaluate_robustness(
    model_scores: pd.DataFrame,
    raw_images: ImageStore,
    fusion_checkpoint: dict[str, Any],
    params: ValidationConfig,
    runtime: ExtractionConfig,
    **feature_caches: FeatureCacheRoot,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score the test images under each perturbation and severity.

    The perturbed views go through the scoring policy like clean images: each view's
    features are cached under the image's content hash + the perturbation spec, per backbone
    identity, so a re-run with the same test images, model backbones and perturbations
    extracts nothing, and a new image or severity adds only its own views. All conditions
    are extracted in one pass per branch (perturbed in the DataLoader workers).

    Args:
        model_scores: Scored val/test rows (``y``, ``score``).
        raw_images: Store of the clean images.
        fusion_checkpoint: The model.
        params: ``validation`` parameters (``robustness``).
        runtime: Extraction settings.
        **feature_caches: Each branch's feature-cache root, keyed by branch.

    Returns:
        Scores per image and perturbation (long table), and the AUC table with its summary
        and the number of views each branch had to extract (or ``{"skipped": reason}`` when
        disabled).
    """
    config = RobustnessConfig.model_validate(params.robustness)
    columns = ["image_path", "content_hash", "y", "perturbation", "severity", "score"]
    if not config.enabled:
        return pd.DataFrame(columns=columns), {"skipped": "validation.robustness.enabled is false"}

    test = select_images(model_scores[model_scores["split"] == "test"], config, label_column="y")
    test = test.reset_index(drop=True)
    y = test["y"].to_numpy()
    clean_auc = float(roc_auc_score(y, test["score"].to_numpy()))
    grid = perturbation_grid(config)
    views = perturbed_views(test, grid, config.seed)
    started = time.perf_counter()
    scores, extracted = score_rows(
        views, fusion_checkpoint, PerturbationViews(raw_images, config.seed), feature_caches,
        runtime,
    )  # fmt: skip
    logger.info(
        "Robustness: %d conditions x %d images in %.1f s; views extracted (not cached): %s",
        len(grid),
        len(test),
        time.perf_counter() - started,
        extracted,
    )
    views = views.assign(score=scores, content_hash=views["image_hash"])
    by_condition = {
        (name, severity): views.loc[
            (views["perturbation"] == name) & (views["severity"] == severity), "score"
        ].to_numpy()
        for name, severity in grid
    }
    table = robustness_table(clean_auc, y, by_condition, config)
    summary = robustness_summary(table, clean_auc)
    reported = summary["reported_only"]
    logger.info(
        "Robustness over %d gated conditions: mean AUC drop %s, worst %s (%s); over %d "
        "reported-only: mean %s, worst %s (%s)",
        summary["n_conditions"],
        _fmt(summary["mean_drop"]),
        _fmt(summary["worst_drop"]),
        summary["worst_case"],
        reported["n_conditions"],
        _fmt(reported["mean_drop"]),
        _fmt(reported["worst_drop"]),
        reported["worst_case"],
    )
    by_family = robustness_by_family(test, views, config)
    return views[columns], {
        "summary": summary,
        "table": table.to_dict("records"),
        "by_family": by_family.to_dict("records"),
        "views_extracted": extracted,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def evaluate_fairness(
    model_scores: pd.DataFrame, performance: dict[str, Any], params: ValidationConfig
) -> dict[str, Any]:
    """Per-group AUC, FPR, FNR, selection rate and the gaps, at the operating threshold."""
    test = model_scores[model_scores["split"] == "test"]
    if not params.group_columns:
        return {"skipped": "validation.group_columns is empty"}
    frame = test.assign(label=test["y"])
    return fairness_report(
        frame,
        performance["threshold"],
        params.group_columns,
        intersection=params.intersection,
        min_group_size=params.min_group_size,
    )


def decide_gate(
    performance: dict[str, Any],
    robustness: dict[str, Any],
    fairness: dict[str, Any],
    params: ValidationConfig,
) -> dict[str, Any]:
    """The verdict the registration pipeline reads: ``passed`` and a reason per failed check."""
    verdict = evaluate_gate(
        performance["metrics"],
        robustness.get("summary"),
        None if "skipped" in fairness else fairness,
        params.gate,
    )
    if verdict["passed"]:
        logger.info("Validation gate PASSED: %s", verdict["summary"])
    else:
        logger.warning("Validation gate FAILED: %s", "; ".join(verdict["failed"]))
    return verdict


def report_validation(
    performance: dict[str, Any],
    robustness: dict[str, Any],
    fairness: dict[str, Any],
    validation_verdict: dict[str, Any],
    fusion_checkpoint: dict[str, Any],
    dataset_fingerprint: dict[str, Any],
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Assemble the results (JSON), the self-contained HTML report and the MLflow metrics."""
    results = {
        "verdict": validation_verdict,
        "threshold": performance["threshold"],
        "threshold_method": performance["threshold_method"],
        "metrics": performance["metrics"],
        "by_family": performance["by_family"],
        "curves": performance["curves"],
        "robustness": robustness,
        "fairness": fairness,
        "lineage": {
            "dataset_fingerprint": dataset_fingerprint["fingerprint"],
            **checkpoint_lineage(fusion_checkpoint),
            "reported_at": utc_now(),
        },
    }
    return results, render_validation_report(results), validation_metric_values(results)
