"""Drift measures separate shifted embeddings from same-distribution ones."""

import numpy as np
import pytest

from deepfake_kedro.retraining.drift import domain_classifier_auc, mmd_squared, subsample


def _samples(shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(80, 16))
    new = rng.normal(size=(60, 16))
    new[:, :4] += shift
    return reference, new


def test_domain_classifier_auc_is_near_half_without_drift_and_high_with_it():
    assert domain_classifier_auc(*_samples(0.0)) < 0.65
    assert domain_classifier_auc(*_samples(2.0)) > 0.95


def test_mmd_grows_with_the_shift():
    none, small, large = (mmd_squared(*_samples(s)) for s in (0.0, 0.5, 2.0))
    assert abs(none) < 0.02 and none < small < large


def test_mismatched_or_tiny_inputs_are_refused():
    with pytest.raises(ValueError, match="same d"):
        mmd_squared(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        domain_classifier_auc(np.zeros((5, 3)), np.zeros((1, 3)))


def test_subsample_keeps_at_most_max_rows():
    rng = np.random.default_rng(0)
    data = np.arange(20).reshape(10, 2)
    assert subsample(data, 20, rng) is data
    assert subsample(data, 4, rng).shape == (4, 2)
