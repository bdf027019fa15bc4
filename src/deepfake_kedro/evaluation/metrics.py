"""Binary metrics of the detector on a held-out split (label 1 = fake).

The operating threshold is chosen on the validation split (``choose_threshold``) and applied
unchanged to the test split (``binary_metrics``), so test numbers are never tuned on the test
split. An image is called fake when ``score >= threshold`` (the convention of sklearn's
``roc_curve``). Labels may be 0/1 or the manifest's ``real``/``fake``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

logger = logging.getLogger(__name__)

THRESHOLD_METHODS = ("eer", "youden", "f1")
_LABEL_NAMES = {"real": 0, "fake": 1}
# Resample cells (rows x images) ranked at once by the bootstrap; bounds its memory (~16 MB).
_BOOTSTRAP_CELLS = 2_000_000


def choose_threshold(
    y_true: ArrayLike, scores: ArrayLike, method: str = "eer", *, split: str = "validation"
) -> float:
    """Choose the operating threshold on the validation split.

    Args:
        y_true: Labels of the validation split (1 = fake).
        scores: Fake scores of the same images.
        method: ``eer`` (where FPR == FNR, interpolated on the ROC), ``youden``
            (max TPR - FPR) or ``f1`` (max F1 of the fake class).
        split: Name of the split, for error messages.

    Returns:
        The threshold; images with ``score >= threshold`` are called fake.

    Raises:
        ValueError: On an unknown method, empty or NaN inputs, or a split with one class.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(
            f"unknown threshold method {method!r}; allowed: {', '.join(THRESHOLD_METHODS)}"
        )
    y, s = check_binary_inputs(y_true, scores, split=split)
    if method == "eer":
        threshold = _eer(y, s)[1]
    elif method == "youden":
        fpr, tpr, thresholds = roc_curve(y, s)
        # Index 0 is the +inf threshold (nothing called fake); never an operating point.
        threshold = thresholds[1 + int(np.argmax((tpr - fpr)[1:]))]
    else:
        precision, recall, thresholds = precision_recall_curve(y, s)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        denominator = precision + recall
        f1 = np.divide(
            2 * precision * recall,
            denominator,
            out=np.zeros_like(denominator),
            where=denominator > 0,
        )
        threshold = thresholds[int(np.argmax(f1))]
    logger.info("Operating threshold on the %s split (%s): %.4f", split, method, threshold)
    return float(threshold)


def equal_error_rate(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Equal error rate: the error where the false positive and false negative rates meet.

    The crossing is linearly interpolated between the two ROC points that bracket it (at
    ties of real and fake scores the ROC jumps diagonally; DeepfakeBench's nearest-point rule
    then under- or overstates the EER by up to half the jump).

    Args:
        y_true: Labels (1 = fake).
        scores: Fake scores.

    Returns:
        ``(eer, threshold)``; the threshold lies in the score gap that realises the crossing
        (its middle when a ROC point sits exactly on it).

    Raises:
        ValueError: On empty or NaN inputs or a single class.
    """
    y, s = check_binary_inputs(y_true, scores, split="given")
    return _eer(y, s)


def expected_calibration_error(y_true: ArrayLike, scores: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error over equal-width score bins.

    Args:
        y_true: Labels (1 = fake).
        scores: Fake probabilities in [0, 1].
        n_bins: Number of equal-width bins on [0, 1].

    Returns:
        Sum over bins of (images in bin / all images) * |fake fraction - mean score|.

    Raises:
        ValueError: On empty, NaN or out-of-range inputs or ``n_bins < 1``.
    """
    y, s = check_binary_inputs(
        y_true, scores, split="given", both_classes=False, probabilities=True
    )
    return _ece(y, s, n_bins)


def bootstrap_auc_ci(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    n_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the ROC AUC.

    Resamples are ranked all at once (Mann-Whitney form of the AUC, ties counted half as in
    ``roc_auc_score``); resamples that lack a class are skipped and logged.

    Args:
        y_true: Labels (1 = fake).
        scores: Fake scores.
        n_samples: Number of bootstrap resamples.
        confidence: Confidence level, in (0, 1).
        seed: Seed of the resampling.

    Returns:
        ``(low, high)`` bounds of the interval.

    Raises:
        ValueError: On bad inputs or settings, or when no resample has both classes.
    """
    y, s = check_binary_inputs(y_true, scores, split="given")
    return _bootstrap_auc_ci(y, s, n_samples=n_samples, confidence=confidence, seed=seed)


def binary_metrics(
    y_true: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    *,
    n_bins: int = 10,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    split: str = "test",
) -> dict[str, float]:
    """Ranking, thresholded and calibration metrics of one split.

    Args:
        y_true: Labels (1 = fake).
        scores: Fake probabilities in [0, 1].
        threshold: Operating threshold chosen on the validation split.
        n_bins: Calibration bins of the ECE.
        bootstrap_samples: Resamples of the AUC confidence interval.
        confidence: Confidence level of that interval.
        seed: Seed of the bootstrap.
        split: Name of the split, for error messages.

    Returns:
        ``auc``, ``auc_ci_low``, ``auc_ci_high``, ``average_precision``, ``accuracy``, ``f1``,
        ``precision``, ``recall`` (of the fake class at ``threshold``), ``eer``, ``brier``,
        ``ece``, ``threshold`` and the counts ``n``, ``n_real``, ``n_fake`` (ints).

    Raises:
        ValueError: On empty, NaN or out-of-range inputs, a single class, or a NaN threshold.
    """
    y, s = check_binary_inputs(y_true, scores, split=split, probabilities=True)
    if not np.isfinite(threshold):
        raise ValueError(f"the operating threshold must be a finite number, got {threshold}")
    predicted = (s >= threshold).astype(np.int64)
    low, high = _bootstrap_auc_ci(
        y, s, n_samples=bootstrap_samples, confidence=confidence, seed=seed
    )
    n_fake = int(y.sum())
    result: dict[str, float] = {
        "auc": float(roc_auc_score(y, s)),
        "auc_ci_low": low,
        "auc_ci_high": high,
        "average_precision": float(average_precision_score(y, s)),
        "accuracy": float(accuracy_score(y, predicted)),
        # No image called fake -> precision 0 rather than an undefined value a gate can't read.
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "eer": _eer(y, s)[0],
        "brier": float(brier_score_loss(y, s)),
        "ece": _ece(y, s, n_bins),
        "threshold": float(threshold),
        "n": int(y.size),
        "n_real": int(y.size - n_fake),
        "n_fake": n_fake,
    }
    logger.info(
        "%s split: AUC %.4f [%.4f, %.4f], EER %.4f, accuracy %.4f at threshold %.4f (n=%d)",
        split,
        result["auc"],
        low,
        high,
        result["eer"],
        result["accuracy"],
        threshold,
        y.size,
    )
    return result


def curves(y_true: ArrayLike, scores: ArrayLike, n_bins: int = 10) -> dict[str, Any]:
    """ROC, precision-recall and calibration curves as plain lists (JSON-ready).

    Args:
        y_true: Labels (1 = fake).
        scores: Fake probabilities in [0, 1].
        n_bins: Equal-width calibration bins.

    Returns:
        ``{"roc": {"fpr", "tpr"}, "pr": {"precision", "recall"}, "calibration":
        {"bin_centres", "observed_frequency", "mean_predicted", "counts"}}``; empty bins have
        ``None`` frequencies.
    """
    y, s = check_binary_inputs(y_true, scores, split="given", probabilities=True)
    fpr, tpr, _ = roc_curve(y, s)
    precision, recall, _ = precision_recall_curve(y, s)
    centres, counts, observed, predicted = _calibration_table(y, s, n_bins)
    filled = counts > 0
    return {
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "pr": {"precision": precision.tolist(), "recall": recall.tolist()},
        "calibration": {
            "bin_centres": centres.tolist(),
            "observed_frequency": [
                float(v) if f else None for v, f in zip(observed, filled, strict=True)
            ],
            "mean_predicted": [
                float(v) if f else None for v, f in zip(predicted, filled, strict=True)
            ],
            "counts": counts.tolist(),
        },
    }


def metrics_by_family(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """AUC and recall of each fake family (manipulation) against all real images.

    Args:
        frame: Columns ``label`` (1 = fake), ``score`` and ``manipulation`` (``none`` for
            reals; missing values become ``unknown``).
        threshold: Operating threshold chosen on the validation split.

    Returns:
        One row per family, sorted by name: ``manipulation``, ``n`` (fakes of the family),
        ``n_real``, ``auc``, ``recall``, ``mean_score``.

    Raises:
        ValueError: On missing columns, bad labels or scores, or a frame without both classes.
    """
    missing = [c for c in ("label", "score", "manipulation") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the scored frame lacks column(s) {missing} (has {list(frame.columns)}); "
            "join the test scores with the split manifest first"
        )
    y, s = check_binary_inputs(frame["label"], frame["score"], split="test")
    family = frame["manipulation"].astype(object).where(frame["manipulation"].notna(), "unknown")
    family = family.astype(str).to_numpy()
    predicted = (s >= threshold).astype(np.int64)
    real = y == 0
    rows = []
    for name in sorted(set(family[y == 1])):
        fake = (y == 1) & (family == name)
        chosen = real | fake
        rows.append(
            {
                "manipulation": name,
                "n": int(fake.sum()),
                "n_real": int(real.sum()),
                "auc": float(roc_auc_score(y[chosen], s[chosen])),
                "recall": float(recall_score(y[chosen], predicted[chosen])),
                "mean_score": float(s[fake].mean()),
            }
        )
    return pd.DataFrame(
        rows, columns=["manipulation", "n", "n_real", "auc", "recall", "mean_score"]
    )


def check_binary_inputs(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    split: str,
    both_classes: bool = True,
    probabilities: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as finite floats, or a ValueError saying what is wrong.

    Args:
        y_true: Labels: 0/1, booleans or ``real``/``fake``.
        scores: Fake scores, one per label.
        split: Name of the split, for error messages.
        both_classes: Require real and fake images.
        probabilities: Require scores in [0, 1].

    Returns:
        ``(labels, scores)`` as int64 and float64 arrays.

    Raises:
        ValueError: Naming the split and the problem.
    """
    y = _as_labels(y_true, split)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"{split} scores must be 1-D, got shape {s.shape}")
    if y.size == 0 and s.size == 0:
        raise ValueError(f"the {split} split is empty: no labels or scores to evaluate")
    if y.size != s.size:
        raise ValueError(f"the {split} split has {y.size} labels but {s.size} scores")
    n_bad = int((~np.isfinite(s)).sum())
    if n_bad:
        raise ValueError(
            f"{n_bad} of {s.size} {split} scores are NaN or infinite; check the model "
            "outputs (a diverged head or a failed feature extraction)"
        )
    if probabilities and (s.min() < 0 or s.max() > 1):
        raise ValueError(
            f"{split} scores must be probabilities in [0, 1] (Brier score and ECE); "
            f"got range [{s.min():.4g}, {s.max():.4g}]"
        )
    if both_classes:
        n_fake = int(y.sum())
        if n_fake in (0, y.size):
            only = "real" if n_fake == 0 else "fake"
            raise ValueError(
                f"the {split} split has only {only} images ({y.size}); ROC AUC, EER and the "
                "operating threshold need both real and fake images: check the split "
                "fractions and the manifest labels"
            )
    return y, s


def _as_labels(y_true: ArrayLike, split: str) -> np.ndarray:
    """0/1 int labels from 0/1, booleans or the manifest's ``real``/``fake``."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{split} labels must be 1-D, got shape {y.shape}")
    if y.dtype.kind in "OUS":
        mapped = pd.Series(y, dtype=object).map(lambda v: _LABEL_NAMES.get(v, v))
        y = mapped.to_numpy()
    bad = ~pd.Series(y, dtype=object).isin([0, 1]).to_numpy()
    if bad.any():
        examples = sorted({str(v) for v in y[bad]})[:5]
        raise ValueError(
            f"{split} labels must be 0 (real) / 1 (fake) or 'real'/'fake'; got {examples}"
        )
    return y.astype(np.int64)


def _eer(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    gap = (1 - tpr) - fpr  # FNR - FPR: falls from 1 (nothing called fake) to -1
    i = int(np.argmax(gap <= 0))  # first ROC point at or past the crossing; i >= 1
    if gap[i] == 0:
        # Any threshold in (thresholds[i + 1], thresholds[i]] gives this point; take the middle.
        return float(fpr[i]), float((thresholds[i] + thresholds[i + 1]) / 2)
    weight = gap[i - 1] / (gap[i - 1] - gap[i])
    eer = fpr[i - 1] + weight * (fpr[i] - fpr[i - 1])
    upper = thresholds[i - 1] if np.isfinite(thresholds[i - 1]) else thresholds[i]
    return float(eer), float(upper + weight * (thresholds[i] - upper))


def _calibration_table(
    y: np.ndarray, s: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin centres, counts, fake fraction and mean score of equal-width bins [a, b)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.searchsorted(edges[1:-1], s, side="right")  # a score of 1.0 joins the last bin
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.bincount(index, weights=y, minlength=n_bins) / counts
        predicted = np.bincount(index, weights=s, minlength=n_bins) / counts
    return (edges[:-1] + edges[1:]) / 2, counts, observed, predicted


def _ece(y: np.ndarray, s: np.ndarray, n_bins: int) -> float:
    _, counts, observed, predicted = _calibration_table(y, s, n_bins)
    filled = counts > 0
    return float(np.sum(counts[filled] * np.abs(observed[filled] - predicted[filled])) / y.size)


def _bootstrap_auc_ci(
    y: np.ndarray, s: np.ndarray, *, n_samples: int, confidence: float, seed: int
) -> tuple[float, float]:
    if n_samples < 1:
        raise ValueError(f"bootstrap n_samples must be at least 1, got {n_samples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n = y.size
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    aucs = []
    for start in range(0, n_samples, chunk):
        index = rng.integers(0, n, size=(min(chunk, n_samples - start), n))
        ranks = rankdata(s[index], axis=1)  # mid-ranks: a tied pair counts half
        positive = y[index]
        n_pos = positive.sum(axis=1)
        n_neg = n - n_pos
        usable = (n_pos > 0) & (n_neg > 0)
        u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
        aucs.append(u[usable] / (n_pos[usable] * n_neg[usable]))
    values = np.concatenate(aucs)
    if values.size == 0:
        raise ValueError(
            f"no bootstrap resample of {n} images had both classes; the split is too small "
            "or too unbalanced for an AUC confidence interval"
        )
    if values.size < n_samples:
        logger.warning(
            "AUC bootstrap: %d of %d resamples lacked a class and were skipped",
            n_samples - values.size,
            n_samples,
        )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)
