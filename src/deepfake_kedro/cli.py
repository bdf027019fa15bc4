"""The project's ``kedro run``: Kedro's own command, with user errors shown as their message.

Kedro looks for ``<package>.cli`` and lets the ``run`` of its ``cli`` group replace the
built-in one (its documented way to customise project commands:
https://docs.kedro.org/en/stable/extend/common_use_cases/). This keeps Kedro's command
(options, help and callback, unchanged) and wraps only its invocation:

- a user error (:mod:`deepfake_kedro.user_errors`: bad data, bad parameters or configuration,
  the project locked by another writer, an unknown ``--pipelines`` name) prints
  ``Error: <message>`` and exits 1, without the traceback of Kedro's internals around it
  (``DEEPFAKE_KEDRO_DEBUG=1`` brings it back); any other error keeps its traceback;
- Ctrl-C or SIGTERM ends the run's MLflow runs as KILLED (:mod:`deepfake_kedro.interrupts`).
"""

from __future__ import annotations

import pkgutil
from typing import Any

import click
from kedro.framework.cli.project import run as _kedro_run

from deepfake_kedro.interrupts import interruptible
from deepfake_kedro.project_lock import LockHeldError
from deepfake_kedro.user_errors import DEBUG_ENV, debugging, user_error

_PACKAGE = __name__.rpartition(".")[0]


class ProjectRunCommand(click.Command):
    """A click command that turns user errors into one ``click.ClickException``."""

    def invoke(self, ctx: click.Context) -> Any:
        with interruptible("kedro run"):
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as error:
                message = _user_message(error, ctx)
                if message is None or debugging():
                    raise
                raise click.ClickException(message) from error


def _user_message(error: Exception, ctx: click.Context) -> str | None:
    found = user_error(error)
    if isinstance(found, LockHeldError):  # one line: who holds the project, what to do
        return str(found)
    if found is not None:
        return f"{found}\n({DEBUG_ENV}=1 shows the traceback)"
    return _unknown_pipeline(error, ctx)


def _unknown_pipeline(error: BaseException, ctx: click.Context) -> str | None:
    """Kedro imports ``<package>.pipelines.<name>`` for each ``--pipelines`` name and fails
    with an ImportError naming that module when there is no such folder."""
    requested = [*(ctx.params.get("pipelines") or []), ctx.params.get("pipeline") or ""]
    known = pipeline_names()
    unknown = [name for name in requested if name and name not in known]
    if not isinstance(error, ImportError) or not unknown:
        return None
    named = [name for name in unknown if f"'{_PACKAGE}.pipelines.{name}'" in str(error)]
    if not named:
        return None
    return (
        f"there is no pipeline named '{named[0]}' (--pipelines); the project's pipelines are: "
        f"{', '.join(known)}"
    )


def pipeline_names() -> list[str]:
    """The project's pipelines (``__default__`` and one per ``pipelines/`` folder), unimported."""
    from deepfake_kedro import pipelines

    folders = sorted(m.name for m in pkgutil.iter_modules(pipelines.__path__) if m.ispkg)
    return ["__default__", *folders]


run = ProjectRunCommand(
    name=_kedro_run.name,
    callback=_kedro_run.callback,
    params=list(_kedro_run.params),
    help=_kedro_run.help,
    epilog=_kedro_run.epilog,
    short_help=_kedro_run.short_help,
    context_settings=_kedro_run.context_settings,
    options_metavar=_kedro_run.options_metavar,
)


@click.group(name="deepfake_kedro")
def cli() -> None:
    """The project's own version of Kedro's run command."""


cli.add_command(run)
