"""The click side of the project bootstrap (:mod:`deepfake_kedro.project`) for the commands.

The options every command shares (``--env``, ``--params``) and the project root and session
with their errors turned into click errors; finding and loading the project is
:mod:`deepfake_kedro.project`'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from kedro.framework.context import KedroContext

from deepfake_kedro import project as bootstrap

ENV_OPTION = click.option(
    "--env",
    "-e",
    default=None,
    help="Kedro configuration environment (default: local, as for kedro run).",
)


def _params_callback(ctx: click.Context, param: click.Parameter, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    try:
        return bootstrap.parse_params(value or "")
    except ValueError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from err


def params_option(
    help_text: str = "Parameter overrides, as for kedro run: key1=value1,key2.sub=value2.",
) -> Any:
    """A ``--params`` option read like ``kedro run --params`` (``0.5`` is a float)."""
    return click.option(
        "--params",
        type=click.UNPROCESSED,
        default="",
        callback=_params_callback,
        help=help_text,
    )


def project_root() -> Path:
    """The project root (:func:`deepfake_kedro.project.find_project`).

    Raises:
        click.ClickException: if there is no project here or at ``$DEEPFAKE_KEDRO_PROJECT_PATH``.
    """
    try:
        return bootstrap.find_project()
    except bootstrap.ProjectNotFoundError as err:
        raise click.ClickException(str(err)) from err


@contextmanager
def project_context(
    env: str | None = None, runtime_params: Mapping[str, Any] | None = None
) -> Iterator[KedroContext]:
    """A loaded ``KedroContext``; kedro-mlflow's hook has set the tracking URI from mlflow.yml."""
    with bootstrap.session(project_root(), env, runtime_params) as session:
        yield session.load_context()
