"""``kedro api serve``: the HTTP training API (FastAPI on uvicorn)."""

from __future__ import annotations

import logging

import click

from deepfake_kedro.commands._project import ENV_OPTION, project_root

logger = logging.getLogger(__name__)


@click.group(name="api")
def api() -> None:
    """HTTP API to train, validate and deploy the detector (docs at /docs)."""


@api.command()
@ENV_OPTION
@click.option("--host", default=None, help="Interface to bind (default: `host` in api.yml).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: api.yml).")
def serve(env: str | None, host: str | None, port: int | None) -> None:
    """Serve the training API; jobs run `kedro run` in this project with the same --env.

    Settings come from conf/base/api.yml, conf/<env>/api.yml and the environment
    (DEEPFAKE_KEDRO_API_TOKENS, DEEPFAKE_KEDRO_API_DATABASE_URL). Without a token the
    server binds only 127.0.0.1 and every endpoint is open. The job store and the MLflow
    store are checked first: an unusable one stops the server with the fix.
    """
    # The app (MLflow, the training code) is imported only once the stores are known usable.
    from deepfake_kedro.api.config import load_api_config
    from deepfake_kedro.api.probes import StoreUnavailable, check_stores_at_start
    from deepfake_kedro.api.security import check_bind_host

    root = project_root()
    try:
        config = load_api_config(root, env)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    host = host or config.host
    port = config.port if port is None else port
    try:
        check_bind_host(host, config.auth_enabled)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    try:  # before the project loads: kedro-mlflow would retry an unusable store for minutes
        check_stores_at_start(root, env, config)
    except StoreUnavailable as err:
        raise click.ClickException(str(err)) from None
    if not config.auth_enabled:
        click.echo(
            f"WARNING: no API token configured: every endpoint is open, so the server binds "
            f"only {host}. Set DEEPFAKE_KEDRO_API_TOKENS to serve other hosts.",
            err=True,
        )
    import uvicorn

    from deepfake_kedro.api.app import create_app, load_project

    try:
        project = load_project(env, root)
    except ValueError as err:
        raise click.ClickException(f"invalid project parameters: {err}") from err
    app = create_app(project, config)
    click.echo(f"Training API on http://{host}:{port} (docs at /docs), project {project.path}")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
