"""Load the Kedro project a command runs in: its parameters and its MLflow configuration."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from kedro.framework.context import KedroContext
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ENV_OPTION = click.option(
    "--env",
    "-e",
    default=None,
    help="Kedro configuration environment (default: local, as for kedro run).",
)


def project_path() -> Path:
    """The project root: the nearest folder upwards holding a ``pyproject.toml`` with Kedro."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.kedro]" in pyproject.read_text(encoding="utf-8"):
            return folder
    raise click.ClickException(
        f"no Kedro project found in {here} or above: run this command inside the project"
    )


@contextmanager
def project_context(
    env: str | None = None, runtime_params: Mapping[str, Any] | None = None
) -> Iterator[KedroContext]:
    """A loaded ``KedroContext``; kedro-mlflow's hook has set the tracking URI from mlflow.yml."""
    path = project_path()
    bootstrap_project(path)
    with KedroSession.create(
        project_path=path, env=env, runtime_params=dict(runtime_params or {})
    ) as session:
        yield session.load_context()
