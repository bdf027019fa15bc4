"""kedro retrain end to end on tiny data with a real SQLite MLflow store.

The tests share one copy of the project and run in order: (a)+(d) two concurrent retrains
without a champion (one trains through its own sessions under the project lock; the other, and
a `kedro run` started meanwhile, find the lock held), (b) nothing new (no training, the
decision says why), (c) new data whose labels break the champion (degradation triggers).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from kedro_project import (
    OPEN_GATE,
    demo_images,
    kedro,
    make_project,
    store_env,
    tiny_parameters,
)
from mlflow import MlflowClient
from PIL import Image, PngImagePlugin

# Tiny data and backbones; every gate open so that the first retrain's model becomes champion.
PARAMETERS = tiny_parameters(OPEN_GATE, {"validation": {"robustness": {"enabled": False}}})
MODEL = "deepfake-detector"
LOCKED = "not started: the project is locked by"
OWNER = "data/09_scheduler/project.lock.owner"
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return store_env()


def _client(project: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def _decision(project: Path) -> dict:
    return json.loads((project / "data/08_reporting/retraining_decision.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory, _migrated_db) -> Path:
    path = make_project(tmp_path_factory.mktemp("retrain_project"), PARAMETERS, data_layers=False)
    demo_images(path / "data/01_raw")
    # An existing store: the concurrent commands below would otherwise race to create the
    # SQLite schema (MLflow's migrations are not safe against a second creator).
    shutil.copy(_migrated_db, path / "mlflow.db")
    return path


def _champion(project: Path) -> str:
    """The champion the training run's registration made."""
    client = _client(project)
    return str(client.get_model_version_by_alias(MODEL, "champion").version)


def _wait_for_holder(project: Path, process: subprocess.Popen, command: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            owner = json.loads((project / OWNER).read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("pid") == process.pid and owner.get("command") == command:
            return
        time.sleep(0.5)
    raise AssertionError(f"{command} (pid {process.pid}) never held the project lock")


def _runs(project: Path, name: str) -> list:
    client = _client(project)
    experiment = client.get_experiment_by_name("deepfake_kedro")
    if experiment is None:
        return []
    return [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("mlflow.runName") == name
    ]


def test_a_d_without_champion_one_of_two_concurrent_retrains_trains(project, timings):
    command = [sys.executable, "-m", "kedro", "retrain"]
    started = time.perf_counter()

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            command,
            cwd=project,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first, second = start(), None
    try:
        _wait_for_holder(project, first, "kedro retrain")
        second = start()
        # A training `kedro run` meanwhile: refused too, before it opens an MLflow run.
        run = kedro(project, "run", check=False, environ=_env())
        outputs = [first.communicate(timeout=600)[0], second.communicate(timeout=600)[0]]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    timings["retrain without champion (check + training), s"] = time.perf_counter() - started
    codes = [first.returncode, second.returncode]
    assert codes == [0, 0], outputs
    trained = [o for o in outputs if "Training finished" in o]
    locked = [o for o in outputs if LOCKED in o]
    assert len(trained) == 1 and len(locked) == 1, outputs
    assert "retrain: yes" in trained[0] and "no champion is registered" in trained[0]
    assert "Training" not in locked[0].replace(LOCKED, "")
    assert f"pid {first.pid} (`kedro retrain`" in locked[0]

    run_output = run.stdout + run.stderr
    assert run.returncode == 1 and "Traceback" not in run_output, run_output
    assert f"Error: `kedro run` {LOCKED} pid {first.pid} (`kedro retrain`, since " in run.stderr

    decision = _decision(project)
    assert decision["retrain"] and decision["checks"]["champion"]["triggered"]
    training_runs = _runs(project, "__default__")
    assert len(training_runs) == 1  # the retrain's own; the refused run opened none
    assert (project / "data/06_models/fusion_checkpoint.pt").is_file()
    # Trained and registered through its own sessions while it held the lock.
    versions = _client(project).search_model_versions(f"name = '{MODEL}'")
    assert [v.run_id for v in versions] == [training_runs[0].info.run_id]
    assert _champion(project) == str(versions[0].version)


def test_b_nothing_new_is_a_quick_no_op_that_says_why(project, timings):
    started = time.perf_counter()
    result = kedro(project, "retrain", check=False, environ=_env())
    timings["no-op retrain check, s"] = time.perf_counter() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retrain: no" in result.stdout and "Nothing to do" in result.stdout
    decision = _decision(project)
    assert decision["retrain"] is False
    assert "no new labelled data" in decision["reasons"][0]
    assert {c["triggered"] for c in decision["checks"].values()} == {False}
    assert len(_runs(project, "__default__")) == 1  # no second training run
    check_run = max(_runs(project, "retraining"), key=lambda r: r.info.start_time)
    assert check_run.data.metrics["retraining.retrain"] == 0.0
    artifacts = {
        a.path for a in _client(project).list_artifacts(check_run.info.run_id, "retraining")
    }
    assert "retraining/retraining_decision.json" in artifacts


def test_c_new_data_that_breaks_the_champion_triggers_on_degradation(project):
    raw = project / "data/01_raw"
    manifest = pd.read_csv(raw / "manifest.csv")
    new = manifest.sample(20, random_state=0).copy()
    info = PngImagePlugin.PngInfo()
    info.add_text("batch", "new")  # same pixels, new bytes: a new image to the champion
    for old, row in zip(manifest.loc[new.index, "image_path"], new.index, strict=True):
        target = "new/" + old.replace("/", "_")
        (raw / "new").mkdir(exist_ok=True)
        Image.open(raw / old).save(raw / target, pnginfo=info)
        new.loc[row, "image_path"] = target
        new.loc[row, "source_id"] = f"new-{new.loc[row, 'source_id']}"
    new["label"] = new["label"].map({"real": "fake", "fake": "real"})  # labels break it
    new["captured_at"] = pd.Timestamp.now(tz="UTC").isoformat()
    pd.concat([manifest, new]).to_csv(raw / "manifest.csv", index=False)

    result = kedro(project, "retrain", "--dry-run", check=False, environ=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retrain: yes" in result.stdout and "--dry-run: not training" in result.stdout
    decision = _decision(project)
    degradation = decision["checks"]["degradation"]
    assert degradation["triggered"] and degradation["value"] < degradation["threshold"]
    assert any(r.startswith("degradation:") for r in decision["reasons"])
    assert decision["checks"]["freshness"]["details"]["n_new_images"] == 20
    assert not decision["checks"]["freshness"]["triggered"]  # the champion is minutes old
    assert len(_runs(project, "__default__")) == 1  # dry run: no training


@pytest.fixture(scope="module")
def timings():
    measured: dict[str, float] = {}
    yield measured
    for name, seconds in measured.items():
        sys.stderr.write(f"\n[timing] {name}: {seconds:.1f}\n")
