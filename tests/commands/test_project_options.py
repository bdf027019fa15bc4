"""The commands' shared options and project lookup (commands/_project.py)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from deepfake_kedro.commands._project import params_option, project_root
from deepfake_kedro.project import PROJECT_PATH_ENV


@click.command()
@params_option()
def show(params: dict) -> None:
    click.echo(repr(params))


def test_params_option_reads_values_as_kedro_run_does():
    result = CliRunner().invoke(show, ["--params", "retraining.force=true,training.lr=0.5"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == repr({"retraining": {"force": True}, "training": {"lr": 0.5}})
    assert CliRunner().invoke(show, []).output.strip() == "{}"


def test_params_option_refuses_an_item_without_a_value_as_a_usage_error():
    result = CliRunner().invoke(show, ["--params", "epochs"])
    assert result.exit_code == 2
    assert "'epochs' has no '='" in result.output


def test_project_root_outside_a_project_is_a_click_error(tmp_path, monkeypatch):
    monkeypatch.delenv(PROJECT_PATH_ENV, raising=False)
    monkeypatch.chdir(tmp_path)

    @click.command()
    def where() -> None:
        click.echo(project_root())

    result = CliRunner().invoke(where, [])
    assert result.exit_code == 1
    assert "no Kedro project found" in result.output
