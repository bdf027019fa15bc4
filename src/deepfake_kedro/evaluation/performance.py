"""Clean performance of scored val/test rows: the operating threshold and the test metrics.

One measurement for the candidate (validation) and the champion re-scored on the same data
(registration), so the two are compared like for like.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from deepfake_kedro.evaluation.config import ValidationConfig
from deepfake_kedro.evaluation.metrics import (
    binary_metrics,
    choose_threshold,
    curves,
    metrics_by_family,
)

logger = logging.getLogger(__name__)


def measure_performance(model_scores: pd.DataFrame, params: ValidationConfig) -> dict[str, Any]:
    """Choose the operating threshold on val, then measure the test split with it.

    Args:
        model_scores: val/test rows with ``split``, ``y`` (1 = fake), ``score`` and
            ``manipulation``.
        params: ``validation`` parameters (threshold method, bootstrap, calibration bins).

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
    return {
        "threshold": threshold,
        "threshold_method": params.threshold_method,
        "metrics": metrics,
        "by_family": metrics_by_family(family_frame, threshold).to_dict("records"),
        "curves": curves(test["y"].to_numpy(), test["score"].to_numpy(), params.calibration_bins),
    }


def scalar_test_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite scalar metrics as ``test_<metric>`` (the names the gate and registry use)."""
    return {
        f"test_{k}": float(v)
        for k, v in metrics.items()
        if np.ndim(v) == 0
        and isinstance(v, int | float | np.number)
        and math.isfinite(float(v))
    }
