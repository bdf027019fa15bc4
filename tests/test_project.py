"""The project bootstrap: finding the project, reading --params, the project's config loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro_project import make_project

from deepfake_kedro import project
from deepfake_kedro.project import (
    PROJECT_PATH_ENV,
    ProjectNotFoundError,
    config_loader,
    find_project,
    parse_params,
)

ROOT = Path(__file__).resolve().parents[1]


def _kedro_project(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text(
        '[tool.kedro]\npackage_name = "deepfake_kedro"\nproject_name = "x"\n'
        'kedro_init_version = "1.0.0"\n'
    )
    return path


def test_find_project_walks_up_from_start(tmp_path, monkeypatch):
    monkeypatch.delenv(PROJECT_PATH_ENV, raising=False)
    project = _kedro_project(tmp_path / "project")
    (project / "src/deep").mkdir(parents=True)
    assert find_project(project / "src/deep") == project.resolve()
    monkeypatch.chdir(project / "src")
    assert find_project() == project.resolve()


def test_find_project_env_var_wins_over_the_current_folder(tmp_path, monkeypatch):
    elsewhere = _kedro_project(tmp_path / "elsewhere")
    monkeypatch.setenv(PROJECT_PATH_ENV, str(elsewhere))
    assert find_project(ROOT) == elsewhere.resolve()


def test_find_project_env_var_not_a_project_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(PROJECT_PATH_ENV, str(tmp_path))
    with pytest.raises(ProjectNotFoundError, match=f"{PROJECT_PATH_ENV}=.* is not a Kedro project"):
        find_project(ROOT)


def test_find_project_outside_any_project_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.delenv(PROJECT_PATH_ENV, raising=False)
    with pytest.raises(ProjectNotFoundError, match=f"no Kedro project found in .*{PROJECT_PATH_ENV}"):
        find_project(tmp_path)


def test_parse_params_reads_values_as_kedro_run_does():
    assert parse_params(
        "retraining.force=true, ensemble_training.lr=0.5,epochs=3,name=a b,none=null,eq=x=y"
    ) == {
        "retraining": {"force": True},
        "ensemble_training": {"lr": 0.5},
        "epochs": 3,
        "name": "a b",
        "none": None,
        "eq": "x=y",
    }
    assert parse_params("a.b=1,a.c=2") == {"a": {"b": 1, "c": 2}}
    assert parse_params("") == {} == parse_params(" , ")


@pytest.mark.parametrize(("text", "message"), [("epochs", "has no '='"), ("=3", "empty key")])
def test_parse_params_refuses_items_that_are_not_key_value(text, message):
    with pytest.raises(ValueError, match=message):
        parse_params(text)


def test_config_loader_adds_patterns_and_keeps_the_project_resolvers(tmp_path, monkeypatch):
    (tmp_path / "conf/base").mkdir(parents=True)
    (tmp_path / "conf/local").mkdir(parents=True)
    (tmp_path / "conf/base/extra.yml").write_text("url: ${oc.env:DEEPFAKE_TEST_URL}\nkeep: 1\n")
    (tmp_path / "conf/local/extra.yml").write_text("keep: 2\n")
    (tmp_path / "conf/base/parameters.yml").write_text("a: {b: 1, c: 2}\n")
    monkeypatch.setenv("DEEPFAKE_TEST_URL", "sqlite:///x.db")
    loader = config_loader(
        tmp_path,
        runtime_params={"a": {"b": 5}},
        config_patterns={"extra": ["extra*"]},
        merge_strategy={"extra": "soft"},
    )
    assert loader["extra"] == {"url": "sqlite:///x.db", "keep": 2}
    assert loader["parameters"] == {"a": {"b": 5, "c": 2}}


def test_a_session_opened_from_another_folder_tracks_inside_its_project(tmp_path, monkeypatch):
    """An Airflow task opens a KedroSession on the project from its own working folder:
    ``${project_root:}`` (mlflow.db, artifacts) must be the session's project, not the cwd."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    copy = make_project(tmp_path / "copy", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv(project.PROJECT_PATH_ENV, raising=False)
    project.config_loader(ROOT)  # this process last worked on another project
    bootstrap_project(copy)
    with KedroSession.create(project_path=copy) as session:
        mlflow = session.load_context().config_loader["mlflow"]
    assert mlflow["server"]["mlflow_tracking_uri"] == f"sqlite:///{copy.resolve()}/mlflow.db"
    assert project.project_root() == copy.resolve()


def test_branches_tell_frozen_from_trainable_ones():
    """train_mode (explicit, or the kind's default: srm_cnn trains) splits the list of
    branches: feature_extraction builds the frozen ones, ensemble_training trains the rest."""
    params = {"feature_extraction": {"backbones": {
        "resnet": {"kind": "resnet", "train_mode": "finetune"},
        "spectral": {"kind": "spectral"},
        "pixel": {"kind": "srm_cnn"},
        "off": {"kind": "srm_cnn", "enabled": False},
    }}}  # fmt: skip
    assert project.branches_from(params) == ["resnet", "spectral", "pixel"]
    assert project.branches_from(params, trainable=False) == ["spectral"]
    assert project.branches_from(params, trainable=True) == ["resnet", "pixel"]


def test_a_branch_of_an_unknown_kind_is_named():
    params = {"feature_extraction": {"backbones": {"x": {"kind": "nope"}}}}
    assert project.branches_from(params) == ["x"]  # the names alone import no kind
    with pytest.raises(ValueError, match="feature_extraction.backbones.x: kind 'nope' is not"):
        project.branches_from(params, trainable=False)
