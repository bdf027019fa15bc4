"""Dataset-path checks, bind guard, token parsing and roles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepfake_kedro.api.config import ApiConfig, Role, load_api_config, parse_token_env
from deepfake_kedro.api.security import DatasetPathError, check_bind_host, check_dataset_path

TOKEN = "t" * 20


@pytest.fixture
def project(tmp_path: Path) -> Path:
    raw = tmp_path / "data" / "01_raw"
    raw.mkdir(parents=True)
    (raw / "manifest.csv").write_text("image_path,label\n")
    (tmp_path / "secret.csv").write_text("image_path,label\n")
    return tmp_path


def refused(path: str, project: Path, roots: list[str] | None = None) -> DatasetPathError:
    with pytest.raises(DatasetPathError) as info:
        check_dataset_path(path, roots or ["data/01_raw"], project)
    return info.value


def test_manifest_under_an_allowed_root_is_accepted_with_its_folder_as_image_root(project):
    location = check_dataset_path("data/01_raw/manifest.csv", ["data/01_raw"], project)
    assert location.manifest == str(project / "data/01_raw/manifest.csv")
    assert location.image_root == str(project / "data/01_raw")
    absolute = check_dataset_path(str(project / "data/01_raw/manifest.csv"), ["data/01_raw"], project)
    assert absolute == location


def test_dot_dot_is_a_400_naming_it(project):
    error = refused("data/01_raw/../../secret.csv", project)
    assert error.status_code == 400 and "'..'" in str(error)


def test_path_outside_the_roots_is_a_403(project):
    error = refused(str(project / "secret.csv"), project)
    assert error.status_code == 403 and "outside the allowed dataset roots" in str(error)
    assert refused("/etc/passwd", project).status_code == 403


def test_symlink_out_of_the_root_is_a_403(project):
    os.symlink(project / "secret.csv", project / "data/01_raw/link.csv")
    error = refused("data/01_raw/link.csv", project)
    assert error.status_code == 403 and "symlink" in str(error)


def test_other_schemes_and_missing_files_are_400(project):
    error = refused(f"file://{project}/data/01_raw/manifest.csv", project)
    assert error.status_code == 400 and "file://" in str(error)
    assert refused("http://example.com/m.csv", project).status_code == 400
    missing = refused("data/01_raw/nope.csv", project)
    assert missing.status_code == 400 and "no manifest file" in str(missing)
    assert refused("data/01_raw/${oc.env:HOME}.csv", project).status_code == 400


def test_s3_uris_must_lie_under_an_allowed_bucket_prefix(project):
    roots = ["data/01_raw", "s3://lake/batches"]
    location = check_dataset_path("s3://lake/batches/b7/manifest.csv", roots, project)
    assert location.manifest == "s3://lake/batches/b7/manifest.csv"
    assert location.image_root == "s3://lake/batches/b7"
    assert refused("s3://lake/other/manifest.csv", project, roots).status_code == 403
    assert refused("s3://lake/batchesX/manifest.csv", project, roots).status_code == 403
    assert refused("s3://lake/batches/../x/manifest.csv", project, roots).status_code == 400


def test_without_a_token_only_loopback_may_be_bound():
    check_bind_host("127.0.0.1", auth_enabled=False)
    check_bind_host("0.0.0.0", auth_enabled=True)
    with pytest.raises(ValueError, match="binds only 127.0.0.1"):
        check_bind_host("0.0.0.0", auth_enabled=False)


def test_token_env_parsing_and_roles():
    assert parse_token_env(f"operator:{TOKEN}, read:{'r' * 16}") == {
        "operator": [TOKEN], "read": ["r" * 16]
    }
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        parse_token_env(f"admin:{TOKEN}")
    with pytest.raises(ValueError, match="role:token"):
        parse_token_env(TOKEN)
    config = ApiConfig(tokens={"read": [TOKEN], "operator": [TOKEN, "o" * 16]})
    assert config.token_roles() == {TOKEN: Role.operator, "o" * 16: Role.operator}
    with pytest.raises(ValueError, match="at least 16 characters"):
        ApiConfig(tokens={"read": ["short"]})


def test_settings_merge_conf_files_and_environment(project):
    (project / "conf/base").mkdir(parents=True)
    (project / "conf/local").mkdir(parents=True)
    (project / "conf/base/api.yml").write_text("port: 9000\nmax_concurrent_jobs: 1\n")
    (project / "conf/local/api.yml").write_text(f"tokens: {{read: [{TOKEN}]}}\n")
    config = load_api_config(
        project,
        environ={"DEEPFAKE_KEDRO_API_TOKENS": f"operator:{'o' * 16}",
                 "DEEPFAKE_KEDRO_API_DATABASE_URL": "sqlite:////tmp/x.db"},
    )
    assert config.port == 9000 and config.database_url == "sqlite:////tmp/x.db"
    assert config.tokens == {"read": [TOKEN], "operator": ["o" * 16]}
    (project / "conf/local/api.yml").write_text("max_concurent_jobs: 2\n")
    with pytest.raises(ValueError, match="max_concurent_jobs"):
        load_api_config(project, environ={})


def test_settings_use_the_projects_config_loader_and_resolvers(project, monkeypatch):
    (project / "conf/base").mkdir(parents=True)
    (project / "conf/local").mkdir(parents=True)
    # oc.env outside credentials is the project's opt-in (settings.py); a bare loader refuses it.
    (project / "conf/base/api.yml").write_text("database_url: ${oc.env:DEEPFAKE_TEST_JOBS_DB}\n")
    monkeypatch.setenv("DEEPFAKE_TEST_JOBS_DB", "sqlite:////tmp/jobs.db")
    assert load_api_config(project, environ={}).database_url == "sqlite:////tmp/jobs.db"


def test_settings_without_api_yml_are_the_defaults(project):
    (project / "conf/base").mkdir(parents=True)
    (project / "conf/local").mkdir(parents=True)
    assert load_api_config(project, environ={}) == ApiConfig()
