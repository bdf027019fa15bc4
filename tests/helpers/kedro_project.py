"""A throw-away copy of the project for end-to-end tests that run the real `kedro` CLI.

The copy has the project's conf/ (minus conf/local) with the test's parameters in
conf/<env>/parameters.yml, pyproject.toml and .telemetry, an empty src/ (the package itself is
installed, editable, in the venv), empty data layers (unless asked not to) and its own SQLite
MLflow store, so tests never touch the repository's data or store. `kedro()` runs the CLI
there with the environment of `env()`.

`TINY` holds the parameters that make a run take seconds (40 demo images of 64 px, resnet18,
short training, a small bootstrap); `tiny_parameters(...)` deep-merges a test's own overrides
over it (`OPEN_GATE` lets any model through the validation gate so that it registers), and
`demo_images` writes the same demo data without a `kedro` run. Only these keys change: the
project soft-merges parameters, so the rest comes from conf/base.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

TINY: dict[str, Any] = {
    "demo_data": {"n_images": 40, "image_size": 64, "seed": 3},
    "data_ingestion": {"min_group_size": 2, "num_workers": 2},
    "feature_extraction": {
        "backbones": {
            "resnet": {"arch": "resnet18", "image_size": 64},
            "clip": {"image_size": 64},
            "spectral": {"image_size": 64},
        },
        "runtime": {"batch_size": 16, "num_workers": 0, "progress": False},
    },
    "ensemble_training": {"epochs": 6, "patience": 3, "batch_size": 16},
    "validation": {"bootstrap_samples": 100, "min_group_size": 3},
}
# The gate's limits that tiny data and random backbones cannot meet, all opened.
OPEN_LIMITS: dict[str, float] = {
    "max_mean_robustness_drop": 1.0,
    "max_worst_robustness_drop": 1.0,
    "max_auc_gap": 1.0,
    "max_equalized_odds_difference": 1.0,
}
# Every gate open: the tiny model passes validation, so `kedro run` registers it.
OPEN_GATE: dict[str, Any] = {
    "validation": {"gate": {"validation_threshold": 0.0, **OPEN_LIMITS}},
}


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def tiny_parameters(*overrides: dict) -> str:
    """`TINY` with ``overrides`` deep-merged over it (later ones win), as parameters YAML."""
    parameters = TINY
    for override in overrides:
        parameters = _merge(parameters, override)
    return yaml.safe_dump(parameters, sort_keys=False)


def make_project(path: Path, parameters: str | None, *, env: str = "local",
                 data_layers: bool = True) -> Path:
    """Copy the project into ``path`` with ``parameters`` as conf/<env>/parameters.yml.

    conf/local is always left out of the copy; conf/<env> is created if needed (an empty
    conf/local for the default env). ``parameters`` None writes no parameters file.
    ``data_layers`` creates the empty data layers; without it the copy has no data/ folder.
    """
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / env).mkdir(exist_ok=True)
    if parameters is not None:
        (path / "conf" / env / "parameters.yml").write_text(parameters)
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    shutil.copy(ROOT / ".telemetry", path / ".telemetry")
    (path / "src").mkdir()
    if data_layers:
        for layer in ("01_raw", "02_intermediate", "03_primary", "08_reporting"):
            (path / "data" / layer).mkdir(parents=True)
    return path


def demo_images(out: Path) -> Path:
    """Write the `TINY` demo data (images and manifest.csv) into ``out`` without kedro."""
    demo = TINY["demo_data"]
    subprocess.run(
        [sys.executable, "-m", "deepfake_kedro.demo", "--out", str(out),
         "--n-images", str(demo["n_images"]), "--image-size", str(demo["image_size"]),
         "--seed", str(demo["seed"]), "--no-progress"],
        check=True, capture_output=True, env=env(), timeout=300,
    )
    return out


def env(**extra: str) -> dict[str, str]:
    """The environment for a `kedro` subprocess: no telemetry, wide log lines, ``extra`` set.

    KEDRO_LOGGING_CONFIG is dropped: it may be relative to the repository, not the copy.
    """
    environ = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    environ.pop("KEDRO_LOGGING_CONFIG", None)
    environ.update(extra)
    return environ


def store_env(**extra: str) -> dict[str, str]:
    """`env()` without MLFLOW_TRACKING_URI: kedro-mlflow then uses the tracking URI of the
    copy's conf/base/mlflow.yml (its own SQLite store), as a user's process would."""
    environ = env(**extra)
    environ.pop("MLFLOW_TRACKING_URI", None)
    return environ


def kedro(project: Path, *args: str, check: bool = True,
          environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m kedro <args>`` in ``project``; raise with its output if it fails.

    ``environ`` replaces `env()` as the subprocess's environment.
    """
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project, env=env() if environ is None else environ,
        capture_output=True, text=True, timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
