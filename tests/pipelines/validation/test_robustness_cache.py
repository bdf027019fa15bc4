"""Perturbed test views go through the feature cache: a re-run extracts nothing, a changed
severity only its own level, a new test image only its own views (issue: validation at the
cost of training)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_kedro.datasets import FeatureCacheDataset
from deepfake_kedro.evaluation.config import ValidationConfig
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.inference.policy import score_evaluated_rows
from deepfake_kedro.pipelines.validation.nodes import evaluate_robustness

RUNTIME = ExtractionConfig(batch_size=16, num_workers=0, progress=False)
LEVELS = {"jpeg": [90.0, 50.0], "blur": [1.0], "noise": [5.0]}


@pytest.fixture(scope="module")
def model(trained, split_manifest):
    """The shared spectral model and the val/test rows it scored."""
    store, checkpoint, cache = trained
    scores, _ = score_evaluated_rows(checkpoint, split_manifest, store, {"spectral": cache}, RUNTIME)
    return store, checkpoint, scores


def robustness(model, cache_root, levels=LEVELS, scores=None):
    store, checkpoint, model_scores = model
    params = ValidationConfig(robustness={"perturbations": levels, "seed": 3})
    cache = FeatureCacheDataset(path=str(cache_root)).load()
    return evaluate_robustness(
        model_scores if scores is None else scores, store, checkpoint, params, RUNTIME,
        spectral=cache,
    )  # fmt: skip


def test_a_second_validation_extracts_no_perturbed_image(model, tmp_path):
    n_test = int((model[2]["split"] == "test").sum())
    first_scores, first = robustness(model, tmp_path)
    assert first["views_extracted"] == {"spectral": 4 * n_test}
    again_scores, again = robustness(model, tmp_path)
    assert again["views_extracted"] == {"spectral": 0}
    assert again["table"] == first["table"]
    np.testing.assert_array_equal(again_scores["score"], first_scores["score"])


def test_changing_one_severity_re_extracts_only_that_level(model, tmp_path):
    n_test = int((model[2]["split"] == "test").sum())
    robustness(model, tmp_path)
    changed = {**LEVELS, "jpeg": [90.0, 30.0]}  # 50 -> 30
    scores, out = robustness(model, tmp_path, changed)
    assert out["views_extracted"] == {"spectral": n_test}
    assert sorted(set(scores.loc[scores["perturbation"] == "jpeg", "severity"])) == [30.0, 90.0]


def test_a_new_test_image_adds_only_its_own_views(model, tmp_path):
    scores = model[2]
    test = scores[scores["split"] == "test"]
    fewer = scores.drop(index=test.index[-1])  # the run before the image arrived
    robustness(model, tmp_path, scores=fewer)
    _, out = robustness(model, tmp_path)
    assert out["views_extracted"] == {"spectral": 4}  # one image x four conditions


def test_cached_views_score_like_re_extracted_ones(model, tmp_path):
    """The cache changes nothing but time: a fresh cache gives the same scores."""
    first, _ = robustness(model, tmp_path / "a")
    robustness(model, tmp_path / "b")
    again, _ = robustness(model, tmp_path / "b")
    np.testing.assert_allclose(again["score"], first["score"], rtol=0, atol=1e-6)
