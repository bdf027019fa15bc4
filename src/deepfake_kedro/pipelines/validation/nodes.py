"""Nodes of the validation pipeline: adapters over :mod:`deepfake_kedro.evaluation`."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from deepfake_kedro.evaluation.config import ValidationConfig
from deepfake_kedro.evaluation.fairness import fairness_report
from deepfake_kedro.evaluation.gate import evaluate_gate
from deepfake_kedro.evaluation.metrics import (
    binary_metrics,
    choose_threshold,
    curves,
    metrics_by_family,
)
from deepfake_kedro.evaluation.perturbations import PerturbedImageStore
from deepfake_kedro.evaluation.report import render_validation_report
from deepfake_kedro.evaluation.robustness import (
    RobustnessConfig,
    perturbation_grid,
    robustness_summary,
    robustness_table,
    select_images,
)
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.features.cache import canonical_json
from deepfake_kedro.inference import Detector
from deepfake_kedro.io import ImageStore
from deepfake_kedro.training import build_model, predict_proba
from deepfake_kedro.training.inputs import LABEL_VALUES, branch_identity, features_for_rows

logger = logging.getLogger(__name__)

EVALUATED_SPLITS = ("val", "test")


def score_model_inputs(  # noqa: PLR0913 - one input per branch keeps the Kedro-Viz graph explicit
    split_manifest: pd.DataFrame,
    fusion_checkpoint: dict[str, Any],
    raw_images: ImageStore,
    runtime: ExtractionConfig,
    resnet_features: dict[str, np.ndarray],
    clip_features: dict[str, np.ndarray],
    spectral_features: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Score the validation and test rows with the model (features from the cache).

    The cached features serve when they come from the backbones the checkpoint was trained
    with; otherwise (a registered version with other backbones, ``--params model_uri=...``)
    the checkpoint's own backbones re-extract the val/test images.

    Returns:
        The val/test manifest rows with ``y`` (1 = fake) and ``score`` (fake probability).
    """
    tables = {"resnet": resnet_features, "clip": clip_features, "spectral": spectral_features}
    scores, _ = score_evaluated_rows(fusion_checkpoint, split_manifest, tables, raw_images, runtime)
    return scores


def score_evaluated_rows(
    checkpoint: dict[str, Any],
    split_manifest: pd.DataFrame,
    tables: dict[str, dict[str, np.ndarray]],
    store: ImageStore,
    runtime: ExtractionConfig,
) -> tuple[pd.DataFrame, str]:
    """The val/test rows with ``y`` and the model's ``score``, and how features were had.

    Raises:
        ValueError: if the val or the test split is empty.
    """
    rows = split_manifest[split_manifest["split"].isin(EVALUATED_SPLITS)].reset_index(drop=True)
    for split in EVALUATED_SPLITS:
        if not (rows["split"] == split).any():
            raise ValueError(f"the {split!r} split is empty: check data_ingestion.split fractions")
    probability, how = score_rows(checkpoint, rows, tables, store, runtime)
    return rows.assign(y=rows["label"].map(LABEL_VALUES).astype(int), score=probability), how


def score_rows(
    checkpoint: dict[str, Any],
    rows: pd.DataFrame,
    tables: dict[str, dict[str, np.ndarray]],
    store: ImageStore,
    runtime: ExtractionConfig,
) -> tuple[np.ndarray, str]:
    """Fake probabilities of ``rows`` and how the features were had (``cached`` or
    ``re-extracted``)."""
    branches = list(checkpoint["config"]["branches"])
    cached = all(
        branch in tables
        and canonical_json(branch_identity(tables[branch]))
        == canonical_json(checkpoint["backbones"][branch])
        for branch in branches
    )
    if cached:
        features = features_for_rows(rows, tables, branches)
        return predict_proba(build_model(checkpoint), features), "cached"
    logger.info(
        "The model's backbones differ from this run's cached features: re-extracting %d "
        "images with its own backbones",
        len(rows),
    )
    return Detector(checkpoint).score(rows, store, runtime), "re-extracted"


def evaluate_performance(model_scores: pd.DataFrame, params: ValidationConfig) -> dict[str, Any]:
    """Choose the operating threshold on val, then measure the test split with it.

    Returns:
        ``threshold``, ``threshold_method``, ``metrics`` (test), ``by_family`` and ``curves``.
    """
    val = model_scores[model_scores["split"] == "val"]
    test = model_scores[model_scores["split"] == "test"]
    threshold = choose_threshold(
        val["y"].to_numpy(), val["score"].to_numpy(), params.threshold_method
    )
    metrics = binary_metrics(
        test["y"].to_numpy(),
        test["score"].to_numpy(),
        threshold,
        n_bins=params.calibration_bins,
        bootstrap_samples=params.bootstrap_samples,
        confidence=params.confidence,
        seed=params.seed,
    )
    family_frame = test.assign(label=test["y"])[["label", "score", "manipulation"]]
    logger.info(
        "Test AUC %.4f [%.4f, %.4f], EER %.4f at threshold %.4f (chosen on val by %s)",
        metrics["auc"],
        metrics["auc_ci_low"],
        metrics["auc_ci_high"],
        metrics["eer"],
        threshold,
        params.threshold_method,
    )
    return {
        "threshold": threshold,
        "threshold_method": params.threshold_method,
        "metrics": metrics,
        "by_family": metrics_by_family(family_frame, threshold).to_dict("records"),
        "curves": curves(test["y"].to_numpy(), test["score"].to_numpy(), params.calibration_bins),
    }


def evaluate_robustness(  # noqa: PLR0913
    model_scores: pd.DataFrame,
    raw_images: ImageStore,
    fusion_checkpoint: dict[str, Any],
    params: ValidationConfig,
    runtime: ExtractionConfig,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Re-extract and re-score the test images under each perturbation and severity.

    Returns:
        Scores per image and perturbation (long table), and the AUC table with its summary
        (or ``{"skipped": reason}`` when disabled).
    """
    config = RobustnessConfig.model_validate(params.robustness)
    columns = ["image_path", "content_hash", "y", "perturbation", "severity", "score"]
    if not config.enabled:
        return pd.DataFrame(columns=columns), {"skipped": "validation.robustness.enabled is false"}

    test = select_images(model_scores[model_scores["split"] == "test"], config, label_column="y")
    test = test.reset_index(drop=True)
    y = test["y"].to_numpy()
    clean_auc = float(roc_auc_score(y, test["score"].to_numpy()))
    detector = Detector(fusion_checkpoint)
    quiet = runtime.model_copy(update={"progress": False})
    grid = perturbation_grid(config)
    scores, frames = {}, []
    started = time.perf_counter()
    for index, (name, severity) in enumerate(grid, start=1):
        store = PerturbedImageStore(raw_images, name, severity, config.seed)
        scores[(name, severity)] = detector.score(test, store, quiet)
        frames.append(
            test[columns[:3]].assign(
                perturbation=name, severity=severity, score=scores[(name, severity)]
            )
        )
        logger.info(
            "Robustness %d/%d: %s %s (%d images, %.0f s so far)",
            index,
            len(grid),
            name,
            severity,
            len(test),
            time.perf_counter() - started,
        )
    table = robustness_table(clean_auc, y, scores)
    summary = robustness_summary(table, clean_auc)
    logger.info(
        "Robustness: mean AUC drop %.4f, worst %.4f (%s)",
        summary["mean_drop"],
        summary["worst_drop"],
        summary["worst_case"],
    )
    return pd.concat(frames, ignore_index=True), {
        "summary": summary,
        "table": table.to_dict("records"),
    }


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


def report_validation(  # noqa: PLR0913
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
            "checkpoint_dataset_fingerprint": fusion_checkpoint.get("dataset_fingerprint"),
            "training_run_id": fusion_checkpoint.get("mlflow_run_id"),
            "registered_model": fusion_checkpoint.get("registry_model_uri"),
            "backbones": fusion_checkpoint.get("backbones", {}),
            "best_val_auc": fusion_checkpoint.get("best_metric"),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    return results, render_validation_report(results), validation_metric_values(results)


def validation_metric_values(results: dict[str, Any]) -> dict[str, Any]:
    """The gate's numbers as MLflow metrics: ``test_<metric>``, ``robustness_*``,
    ``fairness_*`` and ``gate_passed`` (``{name: {"value", "step"}}``); registration tags
    the version with the same names."""
    values: dict[str, float] = {
        f"test_{k}": v for k, v in results["metrics"].items() if isinstance(v, int | float)
    }
    summary = results["robustness"].get("summary") or {}
    for key in ("mean_drop", "worst_drop"):
        if summary.get(key) is not None:
            values[f"robustness_{key}"] = summary[key]
    for key in ("max_auc_gap", "max_equalized_odds_difference"):
        if results["fairness"].get(key) is not None:
            values[f"fairness_{key}"] = results["fairness"][key]
    values["gate_passed"] = float(results["verdict"]["passed"])
    return {k: {"value": float(v), "step": 0} for k, v in values.items() if math.isfinite(float(v))}
