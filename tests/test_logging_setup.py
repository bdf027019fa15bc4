"""conf/logging.yml: rich on a terminal, one full-width plain line per record elsewhere."""

from __future__ import annotations

import io
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import Stream

from deepfake_kedro import logging_setup

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "a long log message " + "that goes on " * 12 + "and ends here"  # > 160 chars
SCRIPT = f"""
import logging
import kedro.framework.project  # configures logging from conf/logging.yml in the cwd
logging.getLogger("deepfake_kedro.check").info({MESSAGE!r})
"""


def test_interactive_follows_isatty():
    assert logging_setup.interactive(Stream(True))
    assert not logging_setup.interactive(Stream(False))
    assert not logging_setup.interactive(None)
    closed = io.StringIO()
    closed.close()  # isatty() raises on a closed stream
    assert not logging_setup.interactive(closed)


def test_progress_bar_only_when_asked_and_stderr_is_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", Stream(True))
    assert logging_setup.show_progress_bar(True)
    assert not logging_setup.show_progress_bar(False)
    monkeypatch.setattr("sys.stderr", Stream(False))
    assert not logging_setup.show_progress_bar(True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    shutil.copy(ROOT / "conf" / "logging.yml", tmp_path / "conf" / "logging.yml")
    return tmp_path


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KEDRO_LOGGING_CONFIG", "COLUMNS")}
    return {**env, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def test_piped_output_has_one_unwrapped_line_per_record(project):
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=project, env=environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "deepfake_kedro.check" in line]
    assert len(lines) == 1, done.stdout
    assert lines[0].endswith(f" - deepfake_kedro.check - INFO - {MESSAGE}")
    assert len(lines[0]) > 160
    # and the rich handler printed nothing: no message split over lines
    assert done.stdout.count("a long log message") == 1


def test_a_terminal_gets_the_rich_handler(project):
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=project, env=environment(),
                              stdout=secondary, stderr=subprocess.PIPE, timeout=120)
        os.close(secondary)
        out = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0, done.stderr
    text = out.decode(errors="replace")
    assert "a long log message" in text
    assert " - deepfake_kedro.check - INFO - " not in text  # not the plain format
