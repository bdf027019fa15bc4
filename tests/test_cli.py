"""The project's `kedro run` (deepfake_kedro/cli.py): user errors print their message, no traceback.

Real `kedro run` processes on a tiny copy of the project; each data error is a manifest of
its own, passed with `--params raw_manifest_path=...`, so the runs share one copy.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro_project import demo_images, env, kedro, make_project, tiny_parameters

pytestmark = pytest.mark.slow

PANEL = "Traceback (most recent call last)"  # rich's panel title and Python's own header


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = make_project(tmp_path_factory.mktemp("cli_project"), tiny_parameters())
    demo_images(path / "data/01_raw")
    return path


def _ingest(project: Path, manifest: Path, **environ: str) -> subprocess.CompletedProcess:
    return kedro(
        project, "run", "--pipelines", "data_ingestion",
        "--params", f"raw_manifest_path={manifest}",
        check=False, environ=env(**environ),
    )


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stderr from the ``Error:`` line on (MLflow logs there too, before it)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("Error: ")), len(lines))
    return lines[start:]


def _assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert PANEL not in output and 'File "' not in output, output
    lines = _error_lines(result)
    assert lines, output
    assert lines[-1] == "(DEEPFAKE_KEDRO_DEBUG=1 shows the traceback)", output
    message = " ".join(lines)
    for fragment in fragments:
        assert fragment in message, output
    return message


def test_a_semicolon_manifest_says_the_delimiter_and_the_fix(project, tmp_path):
    manifest = tmp_path / "manifest.csv"
    raw = (project / "data/01_raw/manifest.csv").read_text()
    manifest.write_text(raw.replace(",", ";"))
    result = _ingest(project, manifest)
    _assert_user_error(result, "looks ';'-delimited", "save it comma-separated", "load_args sep")
    assert len(_error_lines(result)) == 2


def test_a_binary_manifest_says_what_the_file_is(project, tmp_path):
    manifest = tmp_path / "manifest.csv"
    image = next((project / "data/01_raw/images").rglob("*.png"))
    manifest.write_bytes(image.read_bytes())
    message = _assert_user_error(_ingest(project, manifest), "it is a PNG image", "CSV UTF-8")
    assert "codec can't decode" not in message


def test_a_data_validation_error_prints_no_traceback_panel_on_a_terminal(project, tmp_path):
    """On a terminal Kedro's logging installs rich tracebacks: the panel must not appear."""
    manifest = tmp_path / "manifest.csv"
    pd.read_csv(project / "data/01_raw/manifest.csv").drop(columns="source_id").to_csv(
        manifest, index=False
    )
    code, output = _run_on_a_terminal(
        project, "run", "--pipelines", "data_ingestion", "--params", f"raw_manifest_path={manifest}"
    )
    assert code == 1, output
    assert "missing required column(s) source_id" in output
    assert "Error: " in output and PANEL not in output and "╭" not in output, output


def test_debug_brings_the_traceback_back(project, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text((project / "data/01_raw/manifest.csv").read_text().replace(",", ";"))
    result = _ingest(project, manifest, DEEPFAKE_KEDRO_DEBUG="1")
    assert result.returncode == 1
    assert PANEL in result.stderr and "looks ';'-delimited" in result.stderr


def test_a_bad_parameter_and_an_unknown_pipeline_are_one_message(project):
    result = kedro(
        project, "run", "--pipelines", "data_ingestion",
        "--params", "data_ingestion.min_group_size=abc", check=False,
    )
    _assert_user_error(result, "Parameter 'data_ingestion'", "min_group_size")
    result = kedro(project, "run", "--pipelines", "nope", check=False)
    assert result.returncode == 1 and PANEL not in result.stdout + result.stderr
    assert _error_lines(result) == [
        "Error: there is no pipeline named 'nope' (--pipelines); the project's pipelines are: "
        + ", ".join(_pipelines())
    ]


def _pipelines() -> list[str]:
    from deepfake_kedro.cli import pipeline_names

    return pipeline_names()


def _run_on_a_terminal(project: Path, *args: str, timeout: float = 600) -> tuple[int, str]:
    """``python -m kedro <args>`` with stdout and stderr on a pseudo-terminal."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kedro", *args],
        cwd=project, env=env(TERM="xterm"), stdin=subprocess.DEVNULL,
        stdout=follower, stderr=follower, close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")
