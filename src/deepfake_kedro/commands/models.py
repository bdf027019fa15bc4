"""``kedro models``: list, deploy, roll back and clean up registered detector versions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import click

from deepfake_kedro.commands._project import ENV_OPTION, project_context, project_root


def _registry(env: str | None) -> tuple[Any, Any]:
    """The MLflow client on the project's store and the ``registry`` parameters."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from deepfake_kedro.registry.config import RegistryConfig

    with project_context(env) as context:
        params = context.params.get("registry") or {}
    try:
        config = RegistryConfig.model_validate(params)
    except ValueError as err:
        raise click.ClickException(f"invalid parameters under 'registry': {err}") from err
    client = MlflowClient()
    try:
        client.search_registered_models(max_results=1)
    except MlflowException as err:  # pragma: no cover - depends on the store
        raise click.ClickException(
            f"cannot reach the MLflow registry at {client._registry_uri}: {err}. "
            "Check server.mlflow_tracking_uri in conf/<env>/mlflow.yml."
        ) from err
    return client, config


def _run(operation: Callable[[], Any]) -> Any:
    """Turn the registry's ValueErrors (refusals, unknown versions) into clean CLI errors
    (``DEEPFAKE_KEDRO_DEBUG=1``: with their traceback)."""
    from deepfake_kedro.user_errors import debugging

    try:
        return operation()
    except ValueError as err:
        if debugging():
            raise
        raise click.ClickException(str(err)) from err


@contextmanager
def writing(command: str) -> Iterator[None]:
    """Hold the project lock (:mod:`deepfake_kedro.project_lock`) while ``command`` writes
    the registry; another writer holding it is a one-line error."""
    from deepfake_kedro.project_lock import LockHeldError, LockSettingError, ProjectLock

    try:
        lock = ProjectLock(command, project=project_root()).acquire()
    except (LockHeldError, LockSettingError) as err:
        raise click.ClickException(str(err)) from err
    try:
        yield
    finally:
        lock.release()


@click.group(name="models")
def models() -> None:
    """Registered versions of the detector in the MLflow model registry."""


@models.command(name="list")
@ENV_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
def list_models(env: str | None, as_json: bool) -> None:
    """Print the versions, newest first, with aliases, gate metrics and creation time."""
    from deepfake_kedro.registry.operations import format_versions, list_versions

    client, config = _registry(env)
    table = list_versions(client, config)
    if as_json:
        click.echo(table.to_json(orient="records", indent=2))
    elif table.empty:
        click.echo(f"No registered versions of '{config.model_name}' yet: run `kedro run`.")
    else:
        click.echo(format_versions(table))


@models.command()
@ENV_OPTION
@click.argument("version")
@click.option(
    "--force", is_flag=True, help="Deploy even if the version did not pass validation."
)
def deploy(env: str | None, version: str, force: bool) -> None:
    """Make VERSION the champion; the current champion becomes previous-champion."""
    from deepfake_kedro.registry.operations import deploy as deploy_version

    with writing(f"kedro models deploy {version}"):
        client, config = _registry(env)
        click.echo(_run(lambda: deploy_version(client, config, version, force=force)))


@models.command()
@ENV_OPTION
@click.option(
    "--force",
    is_flag=True,
    help="Roll back even to a previous champion that did not pass validation.",
)
def rollback(env: str | None, force: bool) -> None:
    """Swap champion and previous-champion (run it again to undo)."""
    from deepfake_kedro.registry.operations import rollback as rollback_champion

    with writing("kedro models rollback"):
        client, config = _registry(env)
        click.echo(_run(lambda: rollback_champion(client, config, force=force)))


@models.command()
@ENV_OPTION
@click.option("--keep", type=click.IntRange(min=1), default=None, help="Versions to keep.")
@click.option("--archive-dir", default=None, help="Folder for the records of deleted versions.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
def cleanup(env: str | None, keep: int | None, archive_dir: str | None, dry_run: bool) -> None:
    """Delete all but the newest versions, never an aliased one; archive each record first."""
    from deepfake_kedro.registry.operations import cleanup as cleanup_versions

    with nullcontext() if dry_run else writing("kedro models cleanup"):
        client, config = _registry(env)
        if keep is not None:
            config = config.model_copy(update={"keep_versions": keep})
        deleted = _run(
            lambda: cleanup_versions(client, config, archive_dir=archive_dir, dry_run=dry_run)
        )
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(f"{verb} {len(deleted)} version(s) of '{config.model_name}'" + (
        f": {', '.join(deleted)}" if deleted else ""
    ))
