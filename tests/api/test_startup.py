"""``kedro api serve`` refuses to start on an unusable store: at once, in one line, with the fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import folder, unreadable
from kedro_project import env, make_project

pytestmark = pytest.mark.slow

AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="chmod does not deny reads to root")




@pytest.mark.parametrize("break_it", [folder, pytest.param(unreadable, marks=AS_ROOT)])
@pytest.mark.parametrize(("store", "name"), [("mlflow.db", "MLflow store"),
                                              ("data/api/jobs.db", "job store")])
def test_an_unusable_store_stops_the_server_with_one_line(
    tmp_path: Path, break_it: Callable[[Path], None], store: str, name: str
):
    project = make_project(tmp_path / "project", None)
    break_it(project / store)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "api", "serve", "--port", str(port)],
        cwd=project, env=env(), capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < 15, f"took {elapsed:.0f} s"
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert name in errors[0] and store.rsplit("/", 1)[-1] in errors[0] and "Fix:" in errors[0]
