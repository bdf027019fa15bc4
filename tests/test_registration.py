"""Train -> validate -> register, twice, then deploy / rollback / cleanup, on a real SQLite store.

The first version becomes champion; a second that is not better by the promotion margin stays
challenger; a failed verdict registers nothing; the registered model (the whole inference
pipeline) scores images in a fresh Python process that does not have the project on its
path; a run interrupted between registration and promotion leaves the champion untouched.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from kedro_project import OPEN_GATE, kedro, make_project, tiny_parameters
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

MODEL = "deepfake-detector"
# Tiny data and backbones; every gate open so that the tiny model registers. Robustness is
# covered by test_run.py, so it is off here to keep the runs short.
PARAMETERS = tiny_parameters(OPEN_GATE, {
    "data_ingestion": {"num_workers": 1},
    "ensemble_training": {"epochs": 4, "patience": 2},
    "validation": {"robustness": {"enabled": False}},
})


class Crash(BaseException):
    """Stands in for the process being killed (not an Exception: nothing may catch it)."""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = make_project(tmp_path_factory.mktemp("registry_project"), PARAMETERS)
    kedro(path, "run", "--pipelines", "demo_data")
    return path


@pytest.fixture
def client(project: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def aliases(client: MlflowClient) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(MODEL).aliases.items()}


def result(project: Path) -> dict:
    return json.loads((project / "data/08_reporting/registration/registration_result.json").read_text())


def models_cli(project: Path, monkeypatch, *args: str):
    """`kedro models ...` in-process (the same click commands the CLI runs)."""
    from deepfake_kedro.commands import commands

    monkeypatch.chdir(project)
    return CliRunner().invoke(commands, ["models", *args], catch_exceptions=False)


def test_first_validated_version_becomes_champion(project, client):
    kedro(project, "run")

    outcome = result(project)
    assert outcome["registered"] and outcome["promoted"]
    assert outcome["version"] == "1" and outcome["champion"] == "1"
    assert aliases(client) == {"champion": "1", "challenger": "1"}

    version = client.get_model_version(MODEL, "1")
    fingerprint = json.loads((project / "data/03_primary/dataset_fingerprint.json").read_text())
    assert version.tags["dataset_fingerprint"] == fingerprint["fingerprint"]
    assert version.tags["validation_passed"] == "true"
    assert 0.0 <= float(version.tags["gate.test_auc"]) <= 1.0
    assert json.loads(version.tags["backbones"]) == {
        "clip": "clip:ViT-B-32", "resnet": "resnet:resnet18", "spectral": "spectral:v1",
    }
    assert json.loads(version.tags["weights"])["resnet"] == "none:seed=0"
    assert version.tags["git_commit"]
    assert version.tags["validation_report"].endswith("validation/validation_report.html")
    run = client.get_run(outcome["run_id"])
    assert run.data.tags["registered_version"] == "1"
    artifacts = {a.path for a in client.list_artifacts(outcome["run_id"], "validation")}
    assert "validation/validation_report.html" in artifacts


def test_registered_model_scores_images_in_a_fresh_process(project, tmp_path):
    images = sorted((project / "data/01_raw/images").glob("*/*.png"))[:5]
    broken = tmp_path / "broken.png"
    broken.write_bytes(images[0].read_bytes()[:200])  # truncated
    script = tmp_path / "score.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({f"sqlite:///{project / 'mlflow.db'}"!r})
        model = mlflow.pyfunc.load_model("models:/{MODEL}@champion")
        paths = {[str(p) for p in images]!r} + [{str(broken)!r}]
        table = pd.DataFrame({{"image_path": paths}})
        inline = pd.DataFrame({{"image_id": ["inline"], "image_bytes": [{base64.b64encode(images[0].read_bytes()).decode()!r}]}})
        by_path, by_bytes = model.predict(table), model.predict(inline)
        import deepfake_kedro
        print(json.dumps({{
            "by_path": by_path.astype(object).where(by_path.notna(), None).to_dict("records"),
            "by_bytes": by_bytes.astype(object).where(by_bytes.notna(), None).to_dict("records"),
            "package": deepfake_kedro.__file__,
        }}))
    """))
    # A fresh process: no project on the path, no project logging config.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KEDRO_LOGGING_CONFIG")}
    # The model must use its own copy of the checkpoint, never the project's file.
    local = project / "data/06_models/fusion_checkpoint.pt"
    local.rename(local.with_suffix(".hidden"))
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        local.with_suffix(".hidden").rename(local)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    rows = out["by_path"]
    assert [r["image_path"] for r in rows] == [str(p) for p in images] + [str(broken)]
    threshold = json.loads((project / "data/08_reporting/validation_results.json").read_text())["threshold"]
    for row in rows[:-1]:
        assert 0.0 <= row["fake_probability"] <= 1.0 and row["error"] is None
        assert row["threshold"] == pytest.approx(threshold)
        assert row["prediction"] == ("fake" if row["fake_probability"] >= threshold else "real")
    assert rows[-1]["prediction"] == "error" and rows[-1]["fake_probability"] is None
    assert rows[-1]["error"]
    # The same image gives the same score as bytes and as a path.
    assert out["by_bytes"][0]["fake_probability"] == pytest.approx(rows[0]["fake_probability"])
    # The project's code came with the model, not from the installed package.
    assert "/artifacts/code/deepfake_kedro/" in out["package"]


def test_batch_scoring_records_the_model_version(project):
    kedro(project, "run", "--pipelines", "inference",
          "--params", "inference_input=data/01_raw/images/src_000001")
    scores = pd.read_parquet(project / "data/07_model_output/batch_scores.parquet")
    assert len(scores) == len(list((project / "data/01_raw/images/src_000001").glob("*.png")))
    assert set(scores["model_version"]) == {"1"}
    assert set(scores["model_uri"]) == {f"models:/{MODEL}/1"}
    assert scores["fake_probability"].between(0, 1).all()


def test_validating_a_registered_version(project, client):
    kedro(project, "run", "--pipelines", "validation",
          "--params", f"model_uri=models:/{MODEL}/1")
    results = json.loads((project / "data/08_reporting/validation_results.json").read_text())
    assert results["lineage"]["registered_model"] == f"models:/{MODEL}/1"
    tags = client.get_model_version(MODEL, "1").tags
    assert tags["last_validation_passed"] == "true"
    run = client.get_run(tags["last_validation_run_id"])
    assert run.data.tags["validated_model_uri"] == f"models:/{MODEL}/1"
    assert "validation.test_auc" in run.data.metrics
    assert aliases(client) == {"champion": "1", "challenger": "1"}  # aliases never move

    # model_uri with training is refused before anything runs (and no MLflow run is left open).
    refused = kedro(project, "run", "--params", f"model_uri=models:/{MODEL}/1", check=False)
    assert refused.returncode != 0
    assert "this run trains a new model" in refused.stdout + refused.stderr
    experiment = client.get_experiment_by_name("deepfake_kedro")
    assert not client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")


def test_second_run_not_better_by_the_margin_stays_challenger(project, client):
    first = client.get_model_version(MODEL, "1")
    kedro(project, "run", "--params", "registry.promotion_margin=0.05")

    outcome = result(project)
    assert outcome["registered"] and not outcome["promoted"]
    assert outcome["version"] == "2" and outcome["champion"] == "1"
    assert "not better by the margin" in outcome["reason"]
    assert "re-scored on the same test data" in outcome["reason"]
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    second = client.get_model_version(MODEL, "2")
    assert float(second.tags["gate.test_auc"]) < float(first.tags["gate.test_auc"]) + 0.05


def test_deploy_and_rollback(project, client, monkeypatch):
    out = models_cli(project, monkeypatch, "deploy", "2")
    assert out.exit_code == 0, out.output
    assert "now version 2 (was 1, now previous-champion)" in out.output
    assert aliases(client)["champion"] == "2" and aliases(client)["previous-champion"] == "1"

    out = models_cli(project, monkeypatch, "rollback")
    assert out.exit_code == 0, out.output
    assert aliases(client)["champion"] == "1" and aliases(client)["previous-champion"] == "2"
    assert client.get_model_version(MODEL, "2").tags["rolled_back"] == "true"

    out = models_cli(project, monkeypatch, "deploy", "99")
    assert out.exit_code != 0 and "99" in out.output
    listing = models_cli(project, monkeypatch, "list")
    assert listing.exit_code == 0 and "champion" in listing.output and "gate.test_auc" in listing.output


def _run_registration(project: Path, extra: dict | None = None) -> None:
    """`kedro run --pipelines registration` in this process (so a crash can be injected)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, runtime_params=extra or {}) as session:
            session.run(pipeline_names=["registration"])
    finally:
        # A killed process takes its open MLflow run with it; this process must do the same.
        while mlflow.active_run() is not None:
            mlflow.end_run("KILLED")


def test_interrupted_between_registration_and_promotion(project, client, monkeypatch):
    from deepfake_kedro.registry import operations

    # Version 2 holds the checkpoint this run packages again: equal on the same test data,
    # so with margin 0 the new version would be promoted.
    assert models_cli(project, monkeypatch, "deploy", "2").exit_code == 0
    before = aliases(client)
    assert before["champion"] == "2" and before["previous-champion"] == "1"

    def crash(*args, **kwargs):
        raise Crash("killed between registration and promotion")

    monkeypatch.setattr(operations, "_move_champion", crash)
    with pytest.raises(Crash):
        _run_registration(project)  # same model as the champion: it would be promoted (margin 0)

    after = aliases(client)
    assert after["champion"] == "2" and after["previous-champion"] == "1"
    assert after["challenger"] == "3"  # fully registered and tagged, just not promoted
    assert client.get_model_version(MODEL, "3").tags["validation_passed"] == "true"


def test_forced_deploy_and_cleanup_keep_aliased_versions(project, client, monkeypatch, tmp_path):
    monkeypatch.chdir(project)
    _run_registration(project, {"registry": {"promotion_margin": 0.05}})
    assert aliases(client)["challenger"] == "4" and aliases(client)["champion"] == "2"

    # A version whose validation no longer holds is refused unless forced.
    client.set_model_version_tag(MODEL, "3", "validation_passed", "false")
    refused = models_cli(project, monkeypatch, "deploy", "3")
    assert refused.exit_code != 0 and "refusing to deploy version 3" in refused.output
    forced = models_cli(project, monkeypatch, "deploy", "3", "--force")
    assert forced.exit_code == 0 and "[forced" in forced.output
    assert aliases(client)["champion"] == "3"
    assert client.get_model_version(MODEL, "3").tags["forced_deploy"] == "true"
    assert models_cli(project, monkeypatch, "rollback").exit_code == 0
    assert aliases(client) == {"champion": "2", "previous-champion": "3", "challenger": "4"}

    # Keep 1: version 4 is the newest; 2 and 3 hold aliases; only 1 goes, archived first.
    dry = models_cli(project, monkeypatch, "cleanup", "--keep", "1", "--dry-run")
    assert dry.exit_code == 0 and "Would delete 1 version(s)" in dry.output and ": 1" in dry.output
    done = models_cli(project, monkeypatch, "cleanup", "--keep", "1",
                      "--archive-dir", str(tmp_path / "archive"))
    assert done.exit_code == 0, done.output
    remaining = {str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")}
    assert remaining == {"2", "3", "4"}
    record = json.loads((tmp_path / "archive" / MODEL / "version-1.json").read_text())
    assert record["version"] == "1" and record["tags"]["validation_passed"] == "true"


def test_retraining_reads_a_version_registered_without_retraining(project, client, monkeypatch):
    # Version 4 came from `--pipelines registration`: its MLflow run trained nothing.
    from deepfake_kedro.retraining.champion import load_champion

    assert models_cli(project, monkeypatch, "deploy", "4").exit_code == 0
    version = client.get_model_version(MODEL, "4")
    assert version.tags["training_run_id"] != version.run_id
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    champion = load_champion(client, MODEL)
    assert champion.version == "4" and champion.problems == []
    assert champion.run_id == version.tags["training_run_id"]
    assert champion.checkpoint["registry_version"] == "4"  # the packaged one
    assert len(champion.training_manifest) == 40


def test_failed_validation_registers_nothing(project, client):
    # Re-decide the gate on the same scores with a check no model passes: a Brier score of 0
    # needs every probability to be exactly 0 or 1.
    run = kedro(project, "run", "--from-nodes", "decide_gate_node",
                "--params", "validation.gate.max_metrics.brier=0.0")
    outcome = result(project)
    assert not outcome["registered"] and outcome["version"] is None
    assert "no version of 'deepfake-detector' was registered" in outcome["reason"]
    assert "brier" in outcome["reason"]
    assert "was registered" in run.stdout + run.stderr
    assert {str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")} == {"2", "3", "4"}
