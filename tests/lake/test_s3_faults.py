"""A broken S3 endpoint through the real CLI: `kedro lake check` and `kedro run --env s3`.

Two faults: an endpoint that accepts connections and never answers (a hung store), and a
closed port. Each command stops within the budget with one line naming the endpoint and the
setting to fix, and no traceback. Before the lake's time budget, the silent endpoint kept
`kedro lake check` waiting 5 minutes and `kedro run` for longer; the closed port ended the
run in a traceback of hundreds of lines.

Time is measured from the command's own "Checking the data lake" log line to its exit:
interpreter start, imports and building the pipelines take 10 to 40 s on a loaded 2-core
runner, which says nothing about the lake's budget. The whole command gets a wide bound.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest
from kedro_project import env, kedro, make_project, tiny_parameters

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

BUDGET_S = 45  # from first contact to exit
WHOLE_COMMAND_S = 150  # interpreter and imports included
COMMANDS = {
    "lake check": ("lake", "check", "--env", "s3"),
    "run": ("run", "--env", "s3", "--pipelines", "data_ingestion"),
}
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \S+ - INFO - Checking the data lake",
                    re.MULTILINE)


@pytest.fixture(scope="module")
def project(tmp_path_factory, _migrated_db) -> Path:
    """A project copy for --env s3 with a migrated MLflow store (no 20 s schema creation)."""
    path = make_project(tmp_path_factory.mktemp("s3_faults"), tiny_parameters(), env="s3",
                        data_layers=False)
    shutil.copy(_migrated_db, path / "mlflow.db")
    return path


@pytest.fixture(params=["silent", "closed"])
def endpoint(request) -> tuple[str, str]:
    """(kind, URL) of a broken endpoint."""
    if request.param == "silent":
        return "silent", request.getfixturevalue("silent_endpoint").url
    return "closed", request.getfixturevalue("closed_endpoint")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_broken_endpoint_fails_fast_with_one_line(project, endpoint, command):
    kind, endpoint = endpoint
    environ = env(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="AKIATEST",
                  AWS_SECRET_ACCESS_KEY="secret", DEEPFAKE_LAKE_BUCKET="lake-faults")
    environ.pop("MLFLOW_S3_ENDPOINT_URL", None)
    start = time.monotonic()
    result = kedro(project, *COMMANDS[command], check=False, environ=environ)
    ended, whole = datetime.now(), time.monotonic() - start
    output = result.stdout + result.stderr

    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if endpoint in line and "unreachable" in line]
    assert len(lines) == 1, output[-3000:]
    assert "AWS_ENDPOINT_URL" in lines[0]
    if command == "run":
        assert lines[0].startswith("Error: the data lake of this run cannot be used")
        assert "Mlflow run" not in output  # refused before kedro-mlflow opened a run

    stamp = _STAMP.search(result.stdout)
    assert stamp, result.stdout[-3000:]
    first_contact = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
    elapsed = (ended - first_contact).total_seconds()
    logger.info("%s with a %s endpoint: %.1f s from first contact, %.1f s in all",
                command, kind, elapsed, whole)  # pytest -o log_cli=true shows the figures
    assert elapsed < BUDGET_S, (elapsed, whole)
    assert whole < WHOLE_COMMAND_S, (elapsed, whole)
