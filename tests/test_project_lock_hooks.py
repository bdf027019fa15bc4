"""ProjectLockHooks on Kedro's own hook manager: which runs lock, and that the lock comes back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kedro.framework.hooks import _create_hook_manager, hook_impl
from kedro.pipeline import Pipeline, node

from deepfake_kedro.hooks import ProjectLockHooks
from deepfake_kedro.project_lock import HOLDER_ENV, LockHeldError, ProjectLock

HOLD = """
import sys, time
from deepfake_kedro.project_lock import project_lock
with project_lock("kedro retrain", project=sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _identity(x):
    return x


TRAINING = Pipeline([node(_identity, "model_input", "fusion_checkpoint", name="train")])
SCORING = Pipeline([node(_identity, "images", "batch_scores", name="score")])


class Refuses:
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self) -> None:
        raise ValueError("refused by a later hook")


@pytest.fixture(autouse=True)
def _no_inherited_holder(monkeypatch):
    monkeypatch.delenv(HOLDER_ENV, raising=False)


def _manager(*hooks):
    manager = _create_hook_manager()
    for hook in hooks:
        manager.register(hook)
    return manager


def _free(project) -> bool:
    lock = ProjectLock("probe", project=project, wait_s=0).acquire()
    free = lock.held  # not a nested pass under a lock this process still holds
    lock.release()
    return free


def _run_params(project) -> dict:
    return {"project_path": str(project), "pipeline_names": ["ensemble_training"], "env": None}


def test_a_training_run_holds_the_lock_until_its_last_hook(tmp_path):
    manager = _manager(ProjectLockHooks())
    params = _run_params(tmp_path)
    manager.hook.before_pipeline_run(run_params=params, pipeline=TRAINING, catalog=None)
    holder = ProjectLock("probe", project=tmp_path).holder()
    assert holder["command"] == "kedro run --pipelines ensemble_training"
    assert not _free(tmp_path)
    manager.hook.after_pipeline_run(
        run_params=params, run_result={}, pipeline=TRAINING, catalog=None
    )
    assert _free(tmp_path)


def test_the_lock_comes_back_after_an_error_or_a_refusal_by_a_later_hook(tmp_path):
    manager = _manager(ProjectLockHooks())
    params = _run_params(tmp_path)
    manager.hook.before_pipeline_run(run_params=params, pipeline=TRAINING, catalog=None)
    manager.hook.on_pipeline_error(
        error=RuntimeError("x"), run_params=params, pipeline=TRAINING, catalog=None
    )
    assert _free(tmp_path)

    manager = _manager(ProjectLockHooks(), Refuses())
    with pytest.raises(ValueError, match="refused by a later hook"):
        manager.hook.before_pipeline_run(run_params=params, pipeline=TRAINING, catalog=None)
    assert _free(tmp_path)  # no closing hook comes after a refusal


def test_only_a_writer_is_refused_while_another_process_holds_the_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != HOLDER_ENV},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        manager = _manager(ProjectLockHooks())
        params = _run_params(tmp_path)
        manager.hook.before_pipeline_run(run_params=params, pipeline=SCORING, catalog=None)
        with pytest.raises(LockHeldError, match=rf"pid {holder.pid} \(`kedro retrain`"):
            manager.hook.before_pipeline_run(run_params=params, pipeline=TRAINING, catalog=None)
    finally:
        holder.terminate()
        holder.wait()
