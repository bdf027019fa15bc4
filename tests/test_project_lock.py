"""The retraining lock: one holder at a time, released when its holder dies."""

import os
import signal
import subprocess
import sys
import time

import pytest

from deepfake_kedro.retraining.lock import LockHeldError, retraining_lock

HOLD = """
import sys, time
from deepfake_kedro.retraining.lock import retraining_lock
with retraining_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    path = tmp_path / "locks" / "retraining.lock"
    process = _holder(path)
    try:
        with pytest.raises(
            LockHeldError, match=f"another retraining holds the lock .*pid {process.pid}"
        ):
            with retraining_lock(path):
                pass
    finally:
        process.terminate()
        process.wait()


def test_lock_of_a_killed_process_is_free_again(tmp_path):
    path = tmp_path / "retraining.lock"
    process = _holder(path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with retraining_lock(path) as held:
        assert held == path
    with retraining_lock(path):  # released on exit of the block
        pass


def test_lock_is_released_when_the_block_raises(tmp_path):
    path = tmp_path / "retraining.lock"
    with pytest.raises(RuntimeError), retraining_lock(path):
        raise RuntimeError("training failed")
    start = time.monotonic()
    with retraining_lock(path):
        pass
    assert time.monotonic() - start < 5
