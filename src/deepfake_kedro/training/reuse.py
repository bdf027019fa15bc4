"""Reuse a finished training whose inputs are unchanged, instead of training it again.

Training is deterministic for its inputs (features, labels, images, parameters, seed), so a
``kedro run`` with nothing changed would only reproduce the model it trained last time. The
training state saved after every epoch (``training_state``) carries a digest of everything the
training read; when the saved state is finished and its digest equals this run's, the run takes
its result instead of training (``ensemble_training.reuse: false`` trains anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepfake_kedro.features.cache import canonical_json

INPUTS_DIGEST = "inputs_digest"
"""Key of the digest in a saved training state."""
DIGEST_VERSION = 1
"""Bumped when what the digest covers changes, so older states are never taken as equal."""
_NOT_INPUTS = {"resume", "reuse"}
"""Training parameters that do not change the trained model."""


def inputs_digest(
    arrays: Mapping[str, np.ndarray], params: Mapping[str, Any], settings: Mapping[str, Any]
) -> str:
    """A digest of everything a training run reads.

    Args:
        arrays: Every array training reads (features per branch and split, labels), by name;
            order, dtype, shape and values count.
        params: The ``ensemble_training`` parameters (``resume`` and ``reuse`` left out).
        settings: Anything else the result depends on, JSON-ready (backbone identities and
            configs, the training images' content hashes, the augmentation spec, ...).
    """
    digest = hashlib.sha256()
    digest.update(f"v{DIGEST_VERSION}".encode())
    digest.update(canonical_json({k: v for k, v in params.items() if k not in _NOT_INPUTS}).encode())
    digest.update(canonical_json(dict(settings)).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"|{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def reusable(saved: Mapping[str, Any] | None, digest: str) -> bool:
    """Whether a saved training state is a finished training of the same inputs (its own
    config says how many epochs it was to run: equal digests mean equal parameters)."""
    if saved is None or saved.get(INPUTS_DIGEST) != digest:
        return False
    epochs = int(saved.get("config", {}).get("epochs", 0))
    return bool(saved.get("stopped_early")) or int(saved.get("epoch", 0)) >= epochs
