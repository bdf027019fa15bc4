"""The whole detector rebuilt from a training checkpoint: images in, fake probabilities out.

It runs the same backbone code (preprocessing included) that produced the training features,
through the same extraction engine, then the fusion head. Validation scores perturbed
images with it; the registered model scores new images with it. A branch trained inside
``ensemble_training`` (a pixel branch, a fine-tuned backbone) is rebuilt from its config and
the trained weights the checkpoint carries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deepfake_kedro.features import ExtractionConfig, iter_features
from deepfake_kedro.features.cache import canonical_json
from deepfake_kedro.models import build_extractor
from deepfake_kedro.training import build_model, predict_proba
from deepfake_kedro.training.checkpoint import upgrade

logger = logging.getLogger(__name__)


class Detector:
    """Backbones and fusion head of one training checkpoint.

    Args:
        checkpoint: The ``fusion_checkpoint`` written by ``ensemble_training`` (it holds the
            backbone configs and identities next to the head's weights).
        extractors: Backbones already built for this checkpoint's configs (reused when each
            one's identity matches, so a server does not rebuild them per request).

    Raises:
        ValueError: if the checkpoint predates backbone configs, or a backbone rebuilt from
            its config does not have the identity the head was trained on (e.g. its weights
            file changed).
    """

    def __init__(
        self, checkpoint: Mapping[str, Any], extractors: Mapping[str, Any] | None = None
    ) -> None:
        self.branches: list[str] = list(checkpoint["config"]["branches"])
        self.extractors = {
            branch: build_branch_extractor(checkpoint, branch, (extractors or {}).get(branch))
            for branch in self.branches
        }
        self.head = build_model(checkpoint)

    def features(
        self, rows: pd.DataFrame, store: Any, runtime: ExtractionConfig
    ) -> dict[str, np.ndarray]:
        """Per-branch features of ``rows`` (``image_path``, ``content_hash``), in row order."""
        out = {}
        for branch, extractor in self.extractors.items():
            chunks = [features for _, features in iter_features(rows, store, extractor, runtime)]
            out[branch] = np.concatenate(chunks) if chunks else np.zeros((0, extractor.feature_dim), np.float32)
        return out

    def score(self, rows: pd.DataFrame, store: Any, runtime: ExtractionConfig) -> np.ndarray:
        """Fake probability of each row's image."""
        if rows.empty:
            return np.zeros(0, dtype=np.float64)
        return predict_proba(self.head, self.features(rows, store, runtime))

    def score_features(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Fake probability from precomputed per-branch features."""
        return predict_proba(self.head, {b: features[b] for b in self.branches})


def build_branch_extractor(
    checkpoint: Mapping[str, Any], branch: str, reuse: Any | None = None
) -> Any:
    """The backbone of ``branch`` rebuilt from the checkpoint (``reuse`` when it matches),
    with its trained weights when ``ensemble_training`` trained it.

    Raises:
        ValueError: if the checkpoint predates backbone configs, or the rebuilt backbone does
            not have the identity the head was trained on (e.g. its weights file changed).
    """
    configs = checkpoint.get("backbone_configs")
    if not configs:
        raise ValueError(
            "the checkpoint has no backbone configs: retrain with ensemble_training to get a "
            "checkpoint that can score images"
        )
    expected = checkpoint["backbones"][branch]
    extractor = reuse
    if extractor is None or canonical_json(extractor.identity()) != canonical_json(expected):
        key = f"backbone_configs.{branch}"
        extractor = build_extractor(configs[branch], param_key=key)
        trained = upgrade(checkpoint)["best_branch_state"].get(branch)
        if trained is not None:
            extractor.load_trained(trained, param_key=key)
    if canonical_json(extractor.identity()) != canonical_json(expected):
        raise ValueError(_identity_mismatch(branch, extractor.identity(), expected))
    return extractor


def _identity_mismatch(branch: str, actual: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    differing = sorted(k for k in set(actual) | set(expected) if actual.get(k) != expected.get(k))
    message = (
        f"backbone {branch!r} rebuilt from the checkpoint differs from the one the head was "
        f"trained on in {', '.join(differing)} (now {{{', '.join(f'{k}: {actual.get(k)!r}' for k in differing)}}}, "
        f"trained with {{{', '.join(f'{k}: {expected.get(k)!r}' for k in differing)}}})"
    )
    if "feature_version" in differing:
        return (
            message + ": this process runs a newer deepfake_kedro whose features differ from "
            "the ones the model was trained on. A registered model carries its own code: load "
            "it in a fresh Python process (mlflow.pyfunc.load_model, `mlflow models serve`), "
            "or retrain and register a new version with `kedro run`"
        )
    return message + ": its weights file or the library version changed; retrain"
