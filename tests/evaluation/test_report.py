"""The HTML validation report: content, embedded figures, no external links, escaping."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from deepfake_kedro.evaluation.report import render_validation_report, report_figures

FAILED_REASON = "AUC 0.8123 is below the minimum 0.9000"


def _full_results() -> dict:
    return {
        "verdict": {
            "passed": False,
            "summary": "1 of 3 checks failed",
            "checks": [
                {
                    "name": "min_auc",
                    "value": 0.8123,
                    "limit": 0.9,
                    "comparison": ">=",
                    "passed": False,
                    "reason": FAILED_REASON,
                },
                {
                    "name": "max_ece",
                    "value": 0.04,
                    "limit": 0.1,
                    "comparison": "<=",
                    "passed": True,
                    "reason": "ok",
                },
                {
                    "name": "max_auc_gap",
                    "value": None,
                    "limit": 0.1,
                    "comparison": "<=",
                    "passed": None,
                    "reason": "no group attribute in the manifest",
                },
            ],
        },
        "metrics": {
            "auc": 0.8123,
            "auc_ci_low": 0.75,
            "auc_ci_high": 0.87,
            "average_precision": 0.79,
            "accuracy": 0.74,
            "f1": 0.72,
            "precision": 0.7,
            "recall": 0.74,
            "eer": 0.26,
            "brier": 0.18,
            "ece": 0.04,
            "threshold": 0.5,
            "n": 200,
            "n_real": 100,
            "n_fake": 100,
        },
        "by_family": [
            {"manipulation": "faceswap", "n": 50, "auc": 0.85, "recall": 0.8},
            {"manipulation": "gan", "n": 50, "auc": 0.77, "recall": 0.68},
        ],
        "curves": {
            "roc": {"fpr": [0.0, 0.1, 0.3, 1.0], "tpr": [0.0, 0.5, 0.8, 1.0]},
            "pr": {"precision": [1.0, 0.9, 0.7, 0.5], "recall": [0.0, 0.4, 0.8, 1.0]},
            "calibration": {
                "bin_centers": [0.25, 0.75],
                "observed": [0.2, 0.7],
                "predicted": [0.3, 0.8],
                "counts": [120, 80],
            },
        },
        "robustness": {
            "summary": {
                "clean_auc": 0.8123,
                "mean_drop": 0.1,
                "worst_drop": 0.2,
                "worst_case": "jpeg q=30",
                "per_perturbation": {"jpeg": 0.1},
            },
            "table": [
                {"perturbation": "jpeg", "severity": 90.0, "auc": 0.8123, "drop": 0.0, "n": 200},
                {"perturbation": "jpeg", "severity": 30.0, "auc": 0.6123, "drop": 0.2, "n": 200},
            ],
        },
        "fairness": {
            "attributes": {
                "skin_tone": {
                    "by_group": [
                        {
                            "group": "<script>alert(1)</script>",
                            "count": 4,
                            "auc": None,
                            "fpr": 0.5,
                            "fnr": 0.25,
                            "selection_rate": 0.5,
                            "too_small": True,
                        },
                        {
                            "group": "$light$",
                            "count": 120,
                            "auc": 0.83,
                            "fpr": 0.2,
                            "fnr": 0.25,
                            "selection_rate": 0.5,
                            "too_small": False,
                        },
                    ],
                    "auc_gap": 0.05,
                    "equalized_odds_difference": 0.07,
                    "too_small": ["<script>alert(1)</script>"],
                }
            },
            "max_auc_gap": 0.05,
            "max_equalized_odds_difference": 0.07,
            "min_group_size": 30,
        },
        "lineage": {
            "dataset_fingerprint": "sha256:feedbeef",
            "training_run_id": "run-42",
            "model_uri": "runs:/run-42/model",
            "git_commit": "abc1234",
            "reported_at": "2025-01-01T00:00:00Z",
            "backbones": {"resnet": {"arch": "resnet50", "weights": "IMAGENET1K_V2", "size": 224}},
        },
    }


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def full_html() -> str:
    # Through JSON, as the pipeline saves it.
    return render_validation_report(json.loads(json.dumps(_full_results())))


def test_failed_verdict_is_on_top_with_its_reason(full_html):
    body = full_html.split("<body>", 1)[1]
    assert body.index("FAILED") < body.index("Gate checks") < body.index("Metrics")
    assert FAILED_REASON in full_html
    assert 'class="fail"' in full_html and 'class="skipped"' in full_html
    assert "PASSED" not in full_html


def test_metrics_lineage_and_tables_are_shown(full_html):
    for text in (
        "0.8123",
        "0.7500",
        "0.8700",
        "IMAGENET1K_V2",
        "sha256:feedbeef",
        "run-42",
        "faceswap",
        "jpeg q=30",
        "resnet50",
        "<td>30</td>",
    ):
        assert text in full_html


def test_figures_are_embedded_pngs(full_html):
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', full_html)
    assert len(images) == 5
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)


def test_nothing_links_outside_the_file(full_html):
    assert not EXTERNAL.search(full_html)
    assert "http://" not in full_html and "https://" not in full_html


def test_user_strings_are_escaped(full_html):
    assert "<script>" not in full_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in full_html
    assert "too small" in full_html


def test_minimal_results_render_a_passed_banner():
    html = render_validation_report({"verdict": {"passed": True, "summary": "all good"}})
    assert "PASSED" in html and "all good" in html and "FAILED" not in html
    assert "<img" not in html
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_missing_verdict_is_refused():
    with pytest.raises(ValueError, match="verdict"):
        render_validation_report({"metrics": {"auc": 0.9}})


def test_skipped_and_malformed_sections_do_not_break_the_report():
    results = copy.deepcopy(_full_results())
    results["robustness"] = {"skipped": "robustness.enabled is false"}
    results["fairness"] = {"skipped": "no group attributes <b>"}
    results["curves"]["roc"] = {"fpr": [0.0, 1.0], "tpr": [0.0]}
    html = render_validation_report(results)
    assert "robustness.enabled is false" in html
    assert "no group attributes &lt;b&gt;" in html
    assert set(report_figures(results)) == {"pr", "calibration"}


def test_report_figures_returns_those_present():
    figures = report_figures(_full_results())
    assert set(figures) == {"roc", "pr", "calibration", "robustness", "fairness"}
    assert all(isinstance(fig, Figure) for fig in figures.values())
    assert report_figures({"verdict": {"passed": True}}) == {}


def test_calibration_accepts_british_spelling_and_empty_bins():
    results = {
        "verdict": {"passed": True},
        "curves": {
            "calibration": {
                "bin_centres": [0.25, 0.5, 0.75],
                "observed_frequency": [0.2, None, 0.7],
                "mean_predicted": [0.3, None, 0.8],
                "counts": [10, 0, 10],
            }
        },
    }
    assert set(report_figures(results)) == {"calibration"}
    assert render_validation_report(results).count("data:image/png;base64,") == 1


def test_the_built_package_ships_the_template_and_renders(tmp_path):
    """The template is a package file: a wheel built from pyproject.toml holds it."""
    root = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("*.egg-info", "__pycache__")  # no stale SOURCES.txt
    shutil.copytree(root / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    wheel_dir, installed = tmp_path / "wheel", tmp_path / "installed"
    built = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; "
         "print(build_meta.build_wheel(sys.argv[1]))", str(wheel_dir)],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = wheel_dir / built.stdout.split()[-1]
    with zipfile.ZipFile(wheel) as archive:
        assert "deepfake_kedro/evaluation/templates/validation_report.html.j2" in archive.namelist()
        archive.extractall(installed)

    rendered = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "import deepfake_kedro; assert deepfake_kedro.__file__.startswith(sys.argv[1]); "
         "from deepfake_kedro.evaluation.report import render_validation_report; "
         "print(render_validation_report({'verdict': {'passed': True}}))", str(installed)],
        capture_output=True, text=True, timeout=300,
    )
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    assert "<!DOCTYPE html>" in rendered.stdout and "PASSED" in rendered.stdout
