"""How far the embeddings of new images are from those of the training images."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def subsample(features: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_rows`` random rows of ``features`` (all of them if fewer)."""
    if len(features) <= max_rows:
        return features
    return features[np.sort(rng.choice(len(features), size=max_rows, replace=False))]


def domain_classifier_auc(
    reference: np.ndarray, new: np.ndarray, *, folds: int = 5, seed: int = 0
) -> float:
    """Cross-validated AUC of a logistic regression telling ``new`` rows from ``reference``.

    0.5: the two sets look alike to a linear model; 1.0: every new image is recognisable.

    Args:
        reference: ``[n_ref, d]`` embeddings of the training images.
        new: ``[n_new, d]`` embeddings of the new images.
        folds: Stratified folds (reduced to the smaller side's size when needed).
        seed: Seed of the folds.

    Raises:
        ValueError: if a side has fewer than 2 rows or the widths differ.
    """
    _check(reference, new)
    x = np.concatenate([reference, new]).astype(np.float64)
    y = np.concatenate([np.zeros(len(reference)), np.ones(len(new))])
    splits = min(folds, len(reference), len(new))
    scores = np.empty(len(y))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    for train, test in StratifiedKFold(splits, shuffle=True, random_state=seed).split(x, y):
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


def mmd_squared(reference: np.ndarray, new: np.ndarray) -> float:
    """Unbiased squared maximum mean discrepancy with an RBF kernel on standardised features.

    The bandwidth is the median pairwise distance of the pooled rows (median heuristic).

    Raises:
        ValueError: if a side has fewer than 2 rows or the widths differ.
    """
    _check(reference, new)
    pooled = np.concatenate([reference, new]).astype(np.float64)
    mean, std = pooled.mean(axis=0), pooled.std(axis=0)
    pooled = (pooled - mean) / np.where(std > 0, std, 1.0)
    sq = np.maximum(
        (pooled**2).sum(1)[:, None] + (pooled**2).sum(1)[None, :] - 2 * pooled @ pooled.T, 0.0
    )
    off_diagonal = sq[~np.eye(len(sq), dtype=bool)]
    bandwidth = float(np.median(off_diagonal)) or 1.0
    kernel = np.exp(-sq / bandwidth)
    n = len(reference)
    kxx, kyy, kxy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    m = len(new)
    term_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


def _check(reference: np.ndarray, new: np.ndarray) -> None:
    if reference.ndim != 2 or new.ndim != 2 or reference.shape[1] != new.shape[1]:
        raise ValueError(
            f"reference and new embeddings must be [n, d] with the same d; got shapes "
            f"{reference.shape} and {new.shape}"
        )
    if len(reference) < 2 or len(new) < 2:
        raise ValueError(
            f"need at least 2 rows on each side to compare distributions; got "
            f"{len(reference)} reference and {len(new)} new"
        )
