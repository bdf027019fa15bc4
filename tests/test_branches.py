"""Branches as data: a fourth frozen backbone is a module plus a parameters entry.

The module lives in the project copy's own ``src/`` (Kedro puts it on the path, as it does
for a user's project) and is named only by its parameters entry; nothing else in the
project changes. Extraction, training and validation follow the list.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from kedro_project import kedro, make_project, tiny_parameters

from deepfake_kedro import project as project_module

pytestmark = pytest.mark.slow

EXTRACTOR = '''
"""A tiny frozen backbone of the test's own: per-channel mean, std and gradient energy."""

import torch

from deepfake_kedro.models import FeatureExtractor


class ColourStats(FeatureExtractor):
    default_arch = "v1"

    @classmethod
    def check_config(cls, config):
        if config.arch != "v1":
            raise ValueError(f"arch {config.arch!r} is not supported; allowed: v1")

    def __init__(self, config, param_key=""):
        super().__init__(config, param_key)
        self.weights_id = "none"
        self.feature_dim = 9
        self.eval()

    def features(self, images):
        x = images.float() / 255.0
        grad = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(2, 3))
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3)), grad], dim=1)

    def _identity_extra(self):
        return {"options": dict(self.config.options)}
'''

BRANCHES = ["resnet", "clip", "spectral", "colour"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    parameters = tiny_parameters(
        {
            "feature_extraction": {
                "backbones": {
                    "colour": {
                        "kind": "colour_stats:ColourStats",
                        "image_size": 32,
                        "options": {"note": "added through parameters"},
                    }
                }
            },
            "validation": {"robustness": {"max_images": 4}},
        }
    )
    path = make_project(tmp_path_factory.mktemp("project"), parameters)
    (path / "src" / "colour_stats.py").write_text(textwrap.dedent(EXTRACTOR))
    kedro(path, "run", "--pipelines", "demo_data")
    return path


def test_a_fourth_backbone_runs_through_extraction_training_and_validation(project):
    pipelines = "data_ingestion,feature_extraction,ensemble_training,validation"
    kedro(project, "run", "--pipelines", pipelines)

    report = json.loads(
        (project / "data/08_reporting/feature_extraction/colour.json").read_text()
    )
    assert report["branch"] == "colour" and report["n_extracted"] == 40
    assert report["identity"]["kind"] == "colour_stats:ColourStats"
    assert report["identity"]["feature_dim"] == 9
    assert (project / "data/05_model_input/colour_features.npz").is_file()

    checkpoint = torch.load(project / "data/06_models/fusion_checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["branches"] == BRANCHES
    assert checkpoint["backbone_configs"]["colour"]["kind"] == "colour_stats:ColourStats"

    results = json.loads((project / "data/08_reporting/validation_results.json").read_text())
    assert set(results["lineage"]["backbones"]) == set(BRANCHES)
    assert len(results["robustness"]["table"]) == 19  # the perturbed images went through it too


def test_the_pipelines_list_the_new_branch(project):
    out = kedro(project, "registry", "describe", "feature_extraction").stdout
    assert "colour.extract_features_node" in out and "colour.collect_features_node" in out


def test_a_branch_disabled_by_params_leaves_the_run(project):
    """The pipelines follow the run's own configuration (``--params``), not just conf/."""
    result = kedro(
        project, "run", "--pipelines", "feature_extraction",
        "--params", "feature_extraction.backbones.colour.enabled=false",
    )
    log = result.stdout + result.stderr
    assert "spectral.extract_features_node" in log
    assert "colour.extract_features_node" not in log
    assert project_module.branches_from(
        project_module.parameters(project, runtime_params={
            "feature_extraction": {"backbones": {"colour": {"enabled": False}}}})
    ) == ["resnet", "clip", "spectral"]
