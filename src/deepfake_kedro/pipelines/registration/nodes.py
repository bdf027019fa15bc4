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

import numpy as np
import pandas as pd

from deepfake_kedro.evaluation.config import ValidationConfig
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.io import ImageStore
from deepfake_kedro.pipelines.validation.nodes import (
    evaluate_performance,
    score_evaluated_rows,
    validation_metric_values,
)
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


def evaluate_champion(  # noqa: PLR0913 - one input per branch keeps the Kedro-Viz graph explicit
    champion_checkpoint: dict[str, Any] | None,
    split_manifest: pd.DataFrame,
    raw_images: ImageStore,
    validation: ValidationConfig,
    runtime: ExtractionConfig,
    resnet_features: dict[str, np.ndarray],
    clip_features: dict[str, np.ndarray],
    spectral_features: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Score the current champion on this run's val/test split, measured like the candidate.

    Features come from this run's model inputs when the champion's backbones are the same
    ones (the usual case, instant); otherwise its backbones re-extract the val/test images.

    Returns:
        ``available`` (False when there is no champion), ``version``, ``metrics``
        (``test_<metric>`` as in the gate), ``threshold`` and ``features`` (``cached`` or
        ``re-extracted``).
    """
    if champion_checkpoint is None:
        return {"available": False, "reason": "there is no champion yet"}
    version = champion_checkpoint.get("registry_version")
    tables = {"resnet": resnet_features, "clip": clip_features, "spectral": spectral_features}
    scores, how = score_evaluated_rows(
        champion_checkpoint, split_manifest, tables, raw_images, runtime
    )
    performance = evaluate_performance(scores, validation)
    metrics = {
        f"test_{k}": float(v)
        for k, v in performance["metrics"].items()
        if np.ndim(v) == 0 and isinstance(v, int | float | np.number) and np.isfinite(v)
    }
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
    }


def prepare_registration(  # noqa: PLR0913
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
        TAG_TRAINING_RUN_ID: fusion_checkpoint.get("mlflow_run_id"),
        TAG_TRAINED_AT: fusion_checkpoint.get("created_at") or utc_now(),
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
    else:
        logger.warning("Registration: no version will be registered, %s", reason)
    return request
