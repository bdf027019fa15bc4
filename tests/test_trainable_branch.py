"""A pixel branch end to end: trained inside ensemble_training, registered, and scored by the
registered model in a fresh process exactly as the training run scored the test images.

A copy of the project with the weight-free spectral branch and the trainable ``srm_cnn``
branch (ResNet and CLIP off, to keep it short) runs ``kedro run`` with every gate open, so
version 1 registers. feature_extraction extracts nothing for the pixel branch; its weights
travel in the checkpoint; validation's scores (through the scoring policy and the pixel
branch's feature cache under the trained weights' identity) are the registered model's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from kedro_project import OPEN_GATE, demo_images, kedro, make_project, tiny_parameters
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.slow

MODEL = "deepfake-detector"
PARAMETERS = tiny_parameters(OPEN_GATE, {
    "feature_extraction": {"backbones": {
        "resnet": {"enabled": False},
        "clip": {"enabled": False},
        "pixel": {"enabled": True, "image_size": 64, "options": {"train_crop": 32}},
    }},
    "data_ingestion": {"num_workers": 1},
    "ensemble_training": {"trainable": {"epochs": 3}},
    "validation": {"robustness": {"max_images": 4}},
})  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = make_project(tmp_path_factory.mktemp("pixel_project"), PARAMETERS)
    demo_images(path / "data" / "01_raw")
    kedro(path, "run")
    return path


def test_the_pixel_branch_is_trained_not_extracted(project):
    reports = project / "data/08_reporting/feature_extraction"
    assert (reports / "spectral.json").is_file() and not (reports / "pixel.json").exists()
    assert not (project / "data/05_model_input/pixel_features.npz").exists()

    checkpoint = torch.load(project / "data/06_models/fusion_checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["branches"] == ["spectral", "pixel"]
    assert list(checkpoint["best_branch_state"]) == ["pixel"]
    identity = checkpoint["backbones"]["pixel"]
    assert identity["weights"].startswith("trained:") and identity["train_mode"] == "finetune"
    # Validation cached the trained branch's features under that identity.
    caches = list((project / "data/04_feature/pixel").glob("srm_cnn-*/meta.json"))
    cached = [json.loads(p.read_text())["identity"]["weights"] for p in caches]
    assert cached == [identity["weights"]]

    scores = pd.read_parquet(project / "data/07_model_output/model_scores.parquet")
    val = scores[scores["split"] == "val"]
    assert roc_auc_score(val["y"], val["score"]) == pytest.approx(
        checkpoint["best_metric"], abs=1e-6
    )
    results = json.loads((project / "data/08_reporting/validation_results.json").read_text())
    assert len(results["robustness"]["table"]) == 19


def test_the_registered_model_scores_as_the_training_run_did(project, tmp_path):
    scores = pd.read_parquet(project / "data/07_model_output/model_scores.parquet")
    test = scores[scores["split"] == "test"]
    paths = [str(project / "data/01_raw" / p) for p in test["image_path"]]
    script = tmp_path / "score.py"
    script.write_text(
        textwrap.dedent(f"""
        import json
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({f"sqlite:///{project / 'mlflow.db'}"!r})
        model = mlflow.pyfunc.load_model("models:/{MODEL}@champion")
        out = model.predict(pd.DataFrame({{"image_path": {paths!r}}}))
        print(json.dumps(out["fake_probability"].tolist()))
    """)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KEDRO_LOGGING_CONFIG")}
    local = project / "data/06_models/fusion_checkpoint.pt"
    local.rename(local.with_suffix(".hidden"))  # the model must use its own copy
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        local.with_suffix(".hidden").rename(local)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served == pytest.approx(test["score"].tolist(), abs=1e-5)
