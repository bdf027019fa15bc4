"""The project lock: one writer at a time, re-entrant for its holder, released when it dies.

Real processes hold the lock (an OS lock is per process); the project is a tmp folder.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from deepfake_kedro.project_lock import (
    HOLDER_ENV,
    LOCK_FILE,
    WAIT_ENV,
    LockHeldError,
    LockSettingError,
    ProjectLock,
    lock_path,
    project_lock,
)

HOLD = """
import sys, time
from deepfake_kedro.project_lock import project_lock
with project_lock(sys.argv[2], project=sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""
# Takes the lock and reports whether it passed as nested; a refusal is its traceback.
TAKE = """
import sys
from deepfake_kedro.project_lock import ProjectLock
lock = ProjectLock("child", project=sys.argv[1]).acquire()
print("nested" if lock.nested else "held", flush=True)
lock.release()
"""
# Holds the lock, then starts TAKE as a child process (it inherits the holder's token).
PARENT = """
import subprocess, sys
from deepfake_kedro.project_lock import project_lock
with project_lock("kedro retrain", project=sys.argv[1]):
    child = subprocess.run([sys.executable, "-c", sys.argv[2], sys.argv[1]],
                           capture_output=True, text=True, timeout=60)
    print(child.stdout.strip(), child.returncode, flush=True)
"""


def _environ(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in (HOLDER_ENV, WAIT_ENV)}
    return {**environ, **extra}


def _holder(project, command="kedro run --pipelines __default__"):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(project), command],
        stdout=subprocess.PIPE,
        text=True,
        env=_environ(),
    )
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.fixture(autouse=True)
def _no_inherited_holder(monkeypatch):
    monkeypatch.delenv(HOLDER_ENV, raising=False)
    monkeypatch.delenv(WAIT_ENV, raising=False)


def test_the_lock_file_is_under_the_project(tmp_path):
    assert lock_path(tmp_path) == tmp_path.resolve() / LOCK_FILE
    assert LOCK_FILE.parts[0] == "data"


def test_second_writer_is_refused_naming_the_holder_and_the_fix(tmp_path):
    process = _holder(tmp_path)
    try:
        with pytest.raises(LockHeldError) as refused, project_lock(
            "kedro models deploy 3", project=tmp_path
        ):
            pytest.fail("the second writer must not get the lock")
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith("`kedro models deploy 3` not started")
        assert f"pid {process.pid}" in message
        assert "`kedro run --pipelines __default__`" in message and "since 20" in message
        assert WAIT_ENV in message and "Wait for it to finish" in message
        assert refused.value.holder["pid"] == process.pid
        assert "token" not in refused.value.holder
    finally:
        process.terminate()
        process.wait()


def test_a_second_writer_waits_the_configured_time(tmp_path, monkeypatch):
    process = _holder(tmp_path)
    try:
        monkeypatch.setenv(WAIT_ENV, "1.5")
        started = time.monotonic()
        with pytest.raises(LockHeldError, match="after waiting 1.5 s"):
            ProjectLock("kedro run", project=tmp_path).acquire()
        assert time.monotonic() - started >= 1.4
    finally:
        process.terminate()
        process.wait()
    with project_lock("kedro run", project=tmp_path, wait_s=5) as lock:  # free again
        assert lock.held


def test_a_bad_wait_setting_says_what_it_must_be(tmp_path, monkeypatch):
    monkeypatch.setenv(WAIT_ENV, "soon")
    with pytest.raises(LockSettingError, match=f"{WAIT_ENV}='soon' must be a number"):
        ProjectLock("kedro run", project=tmp_path)


def test_the_holders_own_sessions_pass_and_the_lock_stays_held(tmp_path):
    with project_lock("kedro retrain", project=tmp_path) as outer:
        assert os.environ[HOLDER_ENV]
        with project_lock("kedro run --pipelines __default__", project=tmp_path) as inner:
            assert inner.nested and not inner.held
        assert outer.held  # the nested release gave nothing back
        refused = subprocess.run(
            [sys.executable, "-c", TAKE, str(tmp_path)],
            capture_output=True, text=True, env=_environ(), timeout=60,
        )
        assert refused.returncode != 0 and "LockHeldError" in refused.stderr
    assert HOLDER_ENV not in os.environ


def test_a_child_process_of_the_holder_passes_instead_of_deadlocking(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PARENT, str(tmp_path), TAKE],
        capture_output=True, text=True, env=_environ(), timeout=120,
    )
    assert result.stdout.split() == ["nested", "0"], result.stderr


def test_lock_of_a_killed_process_is_free_again(tmp_path):
    process = _holder(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with project_lock("kedro retrain", project=tmp_path) as lock:
        assert lock.held and lock.holder()["command"] == "kedro retrain"
    with project_lock("kedro retrain", project=tmp_path):  # released on exit of the block
        pass


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), project_lock("kedro retrain", project=tmp_path):
        raise RuntimeError("training failed")
    start = time.monotonic()
    with project_lock("kedro retrain", project=tmp_path):
        pass
    assert time.monotonic() - start < 5
    assert not (tmp_path / LOCK_FILE).with_name("project.lock.owner").exists()
