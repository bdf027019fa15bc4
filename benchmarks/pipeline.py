"""A cold and a warm ``kedro run`` of the default pipeline, in a throw-away copy of the project.

The copy has the project's conf/ (minus conf/local), pyproject.toml, empty data layers and its own
SQLite MLflow store; the package is the installed one. In order, each through the real ``kedro``
CLI in a subprocess:

1. ``kedro run --pipelines demo_data``: the demo dataset (what ``make run`` makes first);
2. cold ``kedro run``: ingestion through registration with empty caches;
3. warm ``kedro run``: the same again, nothing changed.

Node times come from the run's own log (``Running node`` to ``Completed node``, millisecond
timestamps) and are summed per pipeline (``kedro registry describe``). Ratios: warm over cold
(target <= 5%), and cold validation over cold ingestion + extraction + training (target <= 1.0).
``make run`` on a fresh clone, install excluded, is demo data + cold run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from benchmarks.common import REPO, RESULTS, Result, Table, fmt

WARM_TARGET = 0.05
VALIDATION_TARGET = 1.0
MAKE_RUN_TARGET_S = 6 * 60
QUICK_IMAGES = 200
PHASES = (
    "data_ingestion",
    "feature_extraction",
    "ensemble_training",
    "validation",
    "registration",
)
_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \S+ - INFO - "
    r"(?:Running node: (?P<start>[^:]+):|Completed node: (?P<end>\S+)$)"
)


def _environment() -> dict[str, str]:
    environ = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    environ["COLUMNS"] = "200"
    environ.pop("KEDRO_LOGGING_CONFIG", None)  # may point into the repository, not the copy
    return environ


def _project_copy(path: Path) -> Path:
    shutil.copytree(REPO / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    shutil.copy(REPO / "pyproject.toml", path / "pyproject.toml")
    shutil.copy(REPO / ".telemetry", path / ".telemetry")
    (path / "src").mkdir()
    for layer in ("01_raw", "02_intermediate", "03_primary", "08_reporting"):
        (path / "data" / layer).mkdir(parents=True)
    return path


def _kedro(project: Path, *args: str) -> tuple[float, str]:
    """Run ``kedro <args>`` in ``project``; return its wall seconds and its log."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"kedro {' '.join(args)} failed (exit {result.returncode}):\n{log}")
    return seconds, log


def node_seconds(log: str) -> dict[str, float]:
    """Seconds per node from a ``kedro run`` log (``Running node`` to ``Completed node``).

    Kedro logs a node's start under its short name and its end under its full, namespaced
    name (``clip.extract_features_node``); the sequential runner runs one node at a time, so
    each ``Completed node`` closes the last ``Running node`` before it. Nodes of one name
    (several runs of it) are summed.
    """
    seconds: dict[str, float] = {}
    started: datetime | None = None
    for line in log.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match["ts"], "%Y-%m-%d %H:%M:%S,%f")
        if match["start"]:
            started = stamp
        elif started is not None:
            name = match["end"]
            seconds[name] = seconds.get(name, 0.0) + (stamp - started).total_seconds()
            started = None
    return seconds


def _pipeline_nodes(project: Path) -> dict[str, str]:
    """Node name -> the pipeline (of :data:`PHASES`) that holds it."""
    owner: dict[str, str] = {}
    for phase in PHASES:
        _, out = _kedro(project, "registry", "describe", phase)
        described = yaml.safe_load(out[out.index("Nodes:") :]) if "Nodes:" in out else {}
        for name in described.get("Nodes", []) or []:
            owner.setdefault(str(name).split(" ")[0].split(":")[0], phase)
    return owner


def _by_phase(seconds: dict[str, float], owner: dict[str, str]) -> dict[str, float]:
    totals = dict.fromkeys(PHASES, 0.0)
    for name, value in seconds.items():
        phase = owner.get(name)
        if phase is not None:
            totals[phase] += value
    return totals


def run(quick: bool) -> Result:
    """Time the demo data, a cold and a warm full ``kedro run`` in a project copy."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RESULTS, prefix="pipeline-") as tmp:
        project = _project_copy(Path(tmp))
        demo_args = ["--params", f"demo_data.n_images={QUICK_IMAGES}"] if quick else []
        demo_s, _ = _kedro(project, "run", "--pipelines", "demo_data", *demo_args)
        owner = _pipeline_nodes(project)
        cold_s, cold_log = _kedro(project, "run")
        warm_s, warm_log = _kedro(project, "run")
    cold, warm = node_seconds(cold_log), node_seconds(warm_log)
    cold_phase, warm_phase = _by_phase(cold, owner), _by_phase(warm, owner)

    rows = [
        [
            phase,
            fmt(cold_phase[phase]),
            fmt(warm_phase[phase]),
            fmt(100 * warm_phase[phase] / cold_phase[phase]) if cold_phase[phase] else "-",
        ]
        for phase in PHASES
    ]
    rows.append(
        [
            "whole run (wall, start-up included)",
            fmt(cold_s),
            fmt(warm_s),
            fmt(100 * warm_s / cold_s),
        ]
    )
    phases = Table("seconds per pipeline", ["pipeline", "cold s", "warm s", "warm %"], rows)
    slowest = sorted(cold, key=cold.__getitem__, reverse=True)[:8]
    nodes = Table(
        "slowest nodes (cold)",
        ["node", "cold s", "warm s"],
        [[name, fmt(cold[name]), fmt(warm.get(name))] for name in slowest],
    )

    before_validation = sum(
        cold_phase[p] for p in ("data_ingestion", "feature_extraction", "ensemble_training")
    )
    validation_ratio = cold_phase["validation"] / before_validation
    warm_ratio = warm_s / cold_s
    make_run_s = demo_s + cold_s
    passed = warm_ratio <= WARM_TARGET and validation_ratio <= VALIDATION_TARGET
    if not quick:
        passed = passed and make_run_s <= MAKE_RUN_TARGET_S
    notes = [
        f"demo data: {demo_s:.0f} s; `make run` equivalent (demo data + cold run, install "
        f"excluded): {make_run_s:.0f} s (target <= {MAKE_RUN_TARGET_S} s"
        f"{', not judged with --quick' if quick else ''})",
        f"cold validation / (ingestion + extraction + training): {validation_ratio:.2f} "
        f"({cold_phase['validation']:.0f} s / {before_validation:.0f} s)",
    ]
    return Result(
        name="pipeline",
        title="warm vs cold `kedro run` of the default pipeline",
        target=f"warm <= {WARM_TARGET:.0%} of cold; cold validation <= {VALIDATION_TARGET:.1f}x "
        "ingestion + extraction + training"
        + ("" if quick else f"; demo data + cold run <= {MAKE_RUN_TARGET_S // 60} min"),
        passed=passed,
        verdict=f"warm {warm_ratio:.1%} of cold ({warm_s:.0f} s / {cold_s:.0f} s); validation "
        f"{validation_ratio:.2f}x; make run {make_run_s:.0f} s",
        tables=[phases, nodes],
        notes=notes,
        metrics={
            "demo_s": demo_s,
            "cold_s": cold_s,
            "warm_s": warm_s,
            "warm_ratio": warm_ratio,
            "validation_ratio": validation_ratio,
            "make_run_s": make_run_s,
            "cold_by_pipeline": cold_phase,
            "warm_by_pipeline": warm_phase,
            "cold_nodes": cold,
            "warm_nodes": warm,
        },
    )
