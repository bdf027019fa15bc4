"""A throw-away copy of the project for end-to-end tests that run the real `kedro` CLI.

The copy has the project's conf/ (minus conf/local), pyproject.toml and .telemetry, an
empty src/ (the package itself is installed, editable, in the venv), empty data layers and
its own SQLite MLflow store, so tests never touch the repository's data or store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_project(path: Path, parameters: str) -> Path:
    """Copy the project into ``path`` with ``parameters`` as conf/local/parameters.yml."""
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    (path / "conf" / "local" / "parameters.yml").write_text(parameters)
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    shutil.copy(ROOT / ".telemetry", path / ".telemetry")
    (path / "src").mkdir()
    for layer in ("01_raw", "02_intermediate", "03_primary", "08_reporting"):
        (path / "data" / layer).mkdir(parents=True)
    return path


def kedro(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m kedro <args>`` in ``project``; raise with its output if it fails."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    env.pop("KEDRO_LOGGING_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
