"""End to end through the real `kedro` CLI, in a copy of the project with its own data and store.

These run exactly what a user runs: `kedro run --pipelines ...` with conf/base, the catalog,
kedro-mlflow and a SQLite tracking store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from kedro_project import kedro, make_project, tiny_parameters
from mlflow.tracking import MlflowClient

# Tiny data and backbones (conf/local of the copy); the real gate, robustness on a few images.
PARAMETERS = tiny_parameters({
    "validation": {"bootstrap_samples": 200, "robustness": {"max_images": 6}},
})
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's configuration with empty data layers and demo data in 01_raw."""
    path = make_project(tmp_path_factory.mktemp("project"), PARAMETERS)
    kedro(path, "run", "--pipelines", "demo_data")
    return path


def test_registry_lists_the_pipelines(project):
    out = kedro(project, "registry", "list").stdout
    for name in ("__default__", "data_ingestion", "demo_data", "feature_extraction", "ensemble_training"):
        assert name in out


def test_demo_data_pipeline_writes_manifest_and_images(project):
    manifest = pd.read_csv(project / "data/01_raw/manifest.csv")
    assert len(manifest) == 40
    assert all((project / "data/01_raw" / p).is_file() for p in manifest["image_path"])


def test_data_ingestion_runs_and_is_tracked(project):
    kedro(project, "run", "--pipelines", "data_ingestion")

    split = pd.read_parquet(project / "data/03_primary/split_manifest.parquet")
    assert set(split["split"]) == {"train", "val", "test"}
    fingerprint = json.loads((project / "data/03_primary/dataset_fingerprint.json").read_text())
    report = json.loads((project / "data/08_reporting/data_quality_report.json").read_text())
    assert report["totals"]["valid"] == 40
    assert (project / "data/08_reporting/data_quality.png").stat().st_size > 1000

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("deepfake_kedro")
    runs = client.search_runs([experiment.experiment_id])
    assert runs, "kedro-mlflow did not record a run"
    run = runs[0]
    assert run.data.tags["dataset_fingerprint"] == fingerprint["fingerprint"]
    assert "git_commit" in run.data.tags
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "data_quality")}
    assert {"data_quality/data_quality_report.json", "data_quality/data_quality.png"} <= artifacts


def test_bad_parameter_fails_before_running(project):
    result = kedro(project, "run", "--pipelines", "data_ingestion", "--params",
                   "data_ingestion.on_invalid=maybe", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "data_ingestion" in output and "on_invalid" in output and "maybe" in output
    assert "validate_raw_data_node" not in output  # nothing ran


def test_bad_manifest_fails_with_row_and_reason(project, tmp_path):
    raw = project / "data/01_raw/manifest.csv"
    original = raw.read_text()
    manifest = pd.read_csv(raw)
    manifest.loc[2, "image_path"] = "../../etc/passwd"
    manifest.to_csv(raw, index=False)
    try:
        result = kedro(project, "run", "--pipelines", "data_ingestion", check=False)
    finally:
        raw.write_text(original)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "manifest row 3" in output and "../../etc/passwd" in output
    problems = pd.read_csv(project / "data/02_intermediate/manifest_problems.csv")
    assert problems[["row", "check"]].values.tolist() == [[3, "path_escape"]]


def latest_run(project: Path):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("deepfake_kedro")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    return client, run


def test_default_pipeline_trains_and_tracks_the_ensemble(project):
    kedro(project, "run")

    checkpoint = torch.load(project / "data/06_models/fusion_checkpoint.pt", weights_only=True)
    assert set(checkpoint["backbones"]) == {"resnet", "clip", "spectral"}
    assert checkpoint["backbones"]["resnet"]["weights"] == "none:seed=0"
    assert 0.0 <= checkpoint["best_metric"] <= 1.0

    client, run = latest_run(project)
    fingerprint = json.loads((project / "data/03_primary/dataset_fingerprint.json").read_text())
    assert run.data.tags["dataset_fingerprint"] == fingerprint["fingerprint"]
    assert "resnet=resnet18" in run.data.tags["backbones"]
    assert "clip=none:seed=0" in run.data.tags["weights"]
    assert run.data.params["feature_extraction.backbones.resnet.weights"] == "none"
    assert run.data.params["ensemble_training.fusion.mode"] == "projection"
    history = client.get_metric_history(run.info.run_id, "training.val_auc")
    assert len(history) >= 2 and [m.step for m in history] == sorted(m.step for m in history)
    artifacts = {a.path for folder in ("checkpoint", "training", "feature_extraction")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"checkpoint/fusion_checkpoint.pt", "training/training_curves.png",
            "feature_extraction/resnet.json"} <= artifacts

    # Validation ran in the same run: verdict, report and metrics next to the training's.
    verdict = json.loads((project / "data/08_reporting/validation_verdict.json").read_text())
    assert isinstance(verdict["passed"], bool) and verdict["checks"]
    html = (project / "data/08_reporting/validation_report.html").read_text()
    assert "data:image/png;base64," in html and ("PASSED" in html or "FAILED" in html)
    assert run.data.metrics["validation.gate_passed"] == float(verdict["passed"])
    assert "validation.test_auc" in run.data.metrics
    validation_artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "validation")}
    assert {"validation/validation_report.html", "validation/validation_verdict.json"} <= validation_artifacts
    results = json.loads((project / "data/08_reporting/validation_results.json").read_text())
    assert results["lineage"]["training_run_id"] == run.info.run_id
    assert len(results["robustness"]["table"]) == 19  # 6 perturbations at their severities

    # Registration followed the verdict (the default 0.95 gate); a failed one registers nothing.
    registration = json.loads(
        (project / "data/08_reporting/registration/registration_result.json").read_text()
    )
    assert registration["registered"] == verdict["passed"]
    if not verdict["passed"]:
        assert "no version of 'deepfake-detector' was registered" in registration["reason"]
        assert client.search_model_versions("name='deepfake-detector'") == []

    # A second run extracts nothing: every image is in the feature cache, and the run says so.
    second = kedro(project, "run", "--pipelines", "feature_extraction")
    log = second.stdout + second.stderr
    line = next(x for x in log.splitlines() if "Cache use of this run:" in x)
    assert "partly cached" not in line and "computed (not in cache)" not in line, line
    for branch in ("resnet", "clip", "spectral"):
        assert f"{branch}.extract_features_node (" in line.split("served from cache: ")[1], line
    for branch in ("resnet", "clip", "spectral"):
        report = json.loads((project / f"data/08_reporting/feature_extraction/{branch}.json").read_text())
        assert report["n_extracted"] == 0 and report["n_cached"] == 40, branch


def test_every_registered_pipeline_is_described_and_inference_model_runs(project):
    """`kedro registry describe` works for each pipeline `kedro registry list` offers (Kedro
    1.7 imports only the pipelines a command asks for), and `inference_model`, which
    conf/base/catalog.yml documents, runs from the CLI on the last checkpoint."""
    listed = [
        line.strip().removeprefix("- ").strip()
        for line in kedro(project, "registry", "list").stdout.splitlines()
        if line.strip().startswith("- ")
    ]
    assert "inference_model" in listed and "__default__" in listed
    for name in listed:
        out = kedro(project, "registry", "describe", name).stdout
        assert "Nodes:" in out and "_node" in out, name

    kedro(project, "run", "--pipelines", "inference_model")
    scores = pd.read_parquet(project / "data/07_model_output/inference_predictions.parquet")
    assert len(scores) == 40 and scores["fake_probability"].between(0, 1).all()
