"""Synthetic per-branch features: one informative, one pure-noise and one weak branch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

BRANCHES = ["informative", "noise", "weak"]


def _make_features(
    n: int, seed: int, shift: float = 0.9
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rows of three branches whose usefulness is known.

    ``informative`` (20-d) separates the classes on 4 dims, ``noise`` (500-d, large offset and
    scale, like raw random-backbone activations) carries no signal, ``weak`` (50-d) a little.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sign = (2 * y - 1)[:, None]
    informative = rng.normal(size=(n, 20))
    informative[:, :4] += shift * sign
    noise = 10 * rng.normal(size=(n, 500)) + 50
    weak = rng.normal(size=(n, 50))
    weak[:, :3] += 0.25 * sign
    features = {"informative": informative, "noise": noise, "weak": weak}
    return {k: v.astype(np.float32) for k, v in features.items()}, y


@pytest.fixture(scope="session")
def make_features():
    """The generator of synthetic branch features: ``make_features(n, seed, shift)``."""
    return _make_features


@pytest.fixture(scope="session")
def synthetic() -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(train features, train labels, val features, val labels): 600 train and 200 val rows."""
    train, y_train = _make_features(600, seed=0)
    val, y_val = _make_features(200, seed=1)
    return train, y_train, val, y_val


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny matrices: a second thread only adds contention (and is much slower on a busy box)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
