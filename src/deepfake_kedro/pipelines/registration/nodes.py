"""Nodes of the registration pipeline (pure: the registry calls happen in RegistrationHooks).

kedro-mlflow logs the inference pipeline as the run's MLflow model only after the last node
ran, so the version cannot be created by a node. These nodes decide everything that can be
decided from data; :class:`deepfake_kedro.hooks.RegistrationHooks` then registers the logged
model exactly as ``registration_request`` says.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from deepfake_kedro.evaluation.config import ValidationConfig
from deepfake_kedro.evaluation.gate import validation_metric_values
from deepfake_kedro.evaluation.performance import measure_performance, scalar_test_metrics
from deepfake_kedro.features import ExtractionConfig, FeatureCacheRoot
from deepfake_kedro.inference.policy import score_evaluated_rows
from deepfake_kedro.io import ImageStore
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.vocabulary import (
    TAG_BACKBONES,
    TAG_FINGERPRINT,
    TAG_OPERATING_THRESHOLD,
    TAG_THRESHOLD_METHOD,
    TAG_TRAINED_AT,
    TAG_TRAINING_RUN_ID,
    TAG_WEIGHTS,
    dataset_tags,
)
from deepfake_kedro.values import utc_now

logger = logging.getLogger(__name__)


def evaluate_champion(
    champion_checkpoint: dict[str, Any] | None,
    split_manifest: pd.DataFrame,
    raw_images: ImageStore,
    validation: ValidationConfig,
    runtime: ExtractionConfig,
    **feature_caches: FeatureCacheRoot,
) -> dict[str, Any]:
    """Score the current champion on this run's val/test split, measured like the candidate.

    The same scoring policy as validation: features cached for the champion's backbones
    (the usual case, instant), the rest extracted once into the cache.

    Returns:
        ``available`` (False when there is no champion), ``version``, ``metrics``
        (``test_<metric>`` as in the gate), ``threshold``, ``features`` (``cached`` or
        ``extracted``) and ``n_extracted`` per branch.
    """
    if champion_checkpoint is None:
        return {"available": False, "reason": "there is no champion yet"}
    version = champion_checkpoint.get("registry_version")
    scores, extracted = score_evaluated_rows(
        champion_checkpoint, split_manifest, raw_images, feature_caches, runtime
    )
    performance = measure_performance(scores, validation)
    metrics = scalar_test_metrics(performance["metrics"])
    how = "extracted" if any(extracted.values()) else "cached"
    logger.info(
        "Champion version %s on this run's test data: AUC %.4f (features %s)",
        version,
        metrics.get("test_auc", float("nan")),
        how,
    )
    return {
        "available": True,
        "version": version,
        "metrics": metrics,
        "threshold": float(performance["threshold"]),
        "features": how,
        "n_extracted": extracted,
    }


def prepare_registration(
    validation_verdict: dict[str, Any],
    validation_results: dict[str, Any],
    dataset_fingerprint: dict[str, Any],
    fusion_checkpoint: dict[str, Any],
    champion_evaluation: dict[str, Any],
    params: RegistryConfig,
) -> dict[str, Any]:
    """What to register: the decision, the version's gate metrics and lineage tags.

    Returns:
        ``model_name``, ``register`` (only when the verdict passed), ``reason``, ``verdict``,
        ``metrics`` (the validation metrics without their prefix, e.g. ``test_auc``; the
        promotion metric must be among them), ``tags`` and ``champion_baseline`` (the
        champion's metrics on this run's test data, or ``None``).

    Raises:
        ValueError: if ``registry.promotion_metric`` is not a validation metric.
    """
    metrics = {
        name: float(entry["value"])
        for name, entry in validation_metric_values(validation_results).items()
    }
    if params.promotion_metric not in metrics:
        raise ValueError(
            f"registry.promotion_metric={params.promotion_metric!r} is not a validation metric; "
            f"choose one of: {', '.join(sorted(metrics))}"
        )
    passed = bool(validation_verdict.get("passed"))
    failed = [str(r) for r in validation_verdict.get("failed") or []]
    reason = (
        "validation passed"
        if passed
        else "validation failed: " + ("; ".join(failed) or str(validation_verdict.get("summary")))
    )
    backbones = fusion_checkpoint.get("backbones") or {}
    fingerprint = dataset_fingerprint["fingerprint"]
    tags = {
        **dataset_tags(dataset_fingerprint),
        TAG_BACKBONES: json.dumps(
            {b: f"{c.get('kind')}:{c.get('arch')}" for b, c in backbones.items()}, sort_keys=True
        ),
        TAG_WEIGHTS: json.dumps({b: c.get("weights") for b, c in backbones.items()}, sort_keys=True),
        TAG_OPERATING_THRESHOLD: validation_results.get("threshold"),
        TAG_THRESHOLD_METHOD: validation_results.get("threshold_method"),
        TAG_TRAINING_RUN_ID: fusion_checkpoint.get("mlflow_run_id"),  # None: untracked
        TAG_TRAINED_AT: fusion_checkpoint.get("trained_at") or utc_now(),
    }
    baseline = None
    if champion_evaluation.get("available"):
        baseline = {
            "version": champion_evaluation.get("version"),
            TAG_FINGERPRINT: fingerprint,
            "metrics": champion_evaluation.get("metrics", {}),
        }
    request = {
        "model_name": params.model_name,
        "register": passed,
        "reason": reason,
        "verdict": validation_verdict,
        "metrics": metrics,
        "tags": {k: v for k, v in tags.items() if v is not None},
        "champion_baseline": baseline,
    }
    if passed:
        logger.info("Registration: validation passed, the run's model will be registered")
    else:  # the registry logs the failed checks when it registers nothing
        logger.info("Registration: the verdict failed, no version will be registered")
    return request
