"""Can the API use its stores? Probes on a new connection each, bounded by a short timeout.

Pooled connections (the job store's engine, MLflow's cached store) keep answering after a
database file has become unreadable or has been replaced, so a probe never reuses them: it
opens its own connection, runs a real query on the store's tables and closes it. A SQLite
store must also be a readable, writable file. ``/health`` runs the probes on every call;
``kedro api serve`` runs them (:func:`check_stores_at_start`) before it loads anything, so an
unusable store stops it at once with one line instead of MLflow's minutes of retries.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path, PurePath
from typing import Any, TypeVar
from urllib.parse import urlparse

from deepfake_kedro.api.config import ApiConfig

T = TypeVar("T")

PROBE_TIMEOUT_S = 3.0
#: Tables a probe reads: the job store's, and one MLflow's tracking and registry stores have.
JOBS_TABLE, MLFLOW_TABLE, REGISTRY_TABLE = "api_jobs", "experiments", "registered_models"
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_MLFLOW_PATTERNS = {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]}  # kedro-mlflow's


class StoreUnavailable(RuntimeError):
    """A store the API needs cannot be used; the message names it, the problem and the fix."""

    def __init__(self, store: str, problem: str, fix: str) -> None:
        super().__init__(f"{store} is not usable: {problem}. {fix}")


def redact(url: str) -> str:
    """``url`` without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def within(timeout_s: float, call: Callable[[], T]) -> T:
    """``call()``, or :class:`TimeoutError` when it has not returned after ``timeout_s``."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=timeout_s)
    except FutureTimeout:
        raise TimeoutError(f"no answer within {timeout_s:g} s") from None
    finally:
        pool.shutdown(wait=False)  # a hung probe must not hang its caller


# ---------------------------------------------------------------------- databases
def probe_database(url: str, table: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Read ``table`` of the database at ``url`` on a new connection.

    ``table`` ``None`` (a store not created yet, at start-up): a SQLite file that does not
    exist only needs a writable folder, and any database only has to answer.

    Raises:
        OSError: When a SQLite path is not a readable, writable file (or cannot be created).
        Exception: The driver's error when the query fails.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _probe_sqlite(parsed.database, table, timeout_s)
        return
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() in ("postgresql", "mysql"):
        connect_args["connect_timeout"] = max(1, int(timeout_s))
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            connection.execute(text(f"SELECT 1 FROM {table} WHERE 1 = 0" if table else "SELECT 1"))
    finally:
        engine.dispose()


def _probe_sqlite(database: str | None, table: str | None, timeout_s: float) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a URI the driver resolves itself: nothing on disk to check
    path = Path(database)
    if not path.exists():
        if table is not None:
            raise FileNotFoundError(f"{path} does not exist")
        folder = next(p for p in path.parents if p.exists())
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} does not exist and {folder} is not writable")
        return
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a database file")
    if not path.is_file():
        raise OSError(f"{path} is not a regular file")
    if not os.access(path, os.R_OK | os.W_OK):
        raise PermissionError(f"{path} is not readable and writable by this user")
    # mode=rw: never create the file; a read of the schema proves it is a usable database.
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout_s)
    try:
        connection.execute(f"SELECT 1 FROM {table or 'sqlite_master'} WHERE 1 = 0").fetchall()
    finally:
        connection.close()


# ---------------------------------------------------------------------- MLflow
def probe_mlflow(
    tracking_uri: str, registry_uri: str | None = None, *, started: bool = True,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> None:
    """Query the MLflow tracking (and registry) store on a new connection.

    A database store (``sqlite:``, ``postgresql:``, ...) is read directly (MLflow's own
    client reuses a cached, pooled engine); a server (``http(s):``) gets a new
    ``MlflowClient`` call, or only has to answer when not ``started`` (its credentials are
    exported by kedro-mlflow when the project loads); a local folder must be readable.

    Args:
        tracking_uri: The tracking store.
        registry_uri: The registry store, when it is another one.
        started: False at start-up: a store not created yet only needs to be creatable.
        timeout_s: Bound on each connection.
    """
    uris = [(tracking_uri, MLFLOW_TABLE)]
    if registry_uri and registry_uri != tracking_uri:
        uris.append((registry_uri, REGISTRY_TABLE))
    for uri, table in uris:
        scheme = urlparse(uri).scheme.split("+")[0].lower()
        if scheme in _DATABASE_SCHEMES:
            probe_database(uri, table if started else None, timeout_s)
        elif scheme in ("http", "https"):
            if started:
                _mlflow_client_call(uri, timeout_s)
            else:
                _http_answers(uri, timeout_s)
        elif scheme in ("", "file"):
            path = Path(urlparse(uri).path if scheme else uri)
            if path.exists() and not os.access(path, os.R_OK | os.W_OK | os.X_OK):
                raise PermissionError(f"{path} is not a readable, writable folder")
            if started and not path.is_dir():
                raise NotADirectoryError(f"{path} is not a folder")
        elif started:  # databricks and other plug-in stores: ask them through MLflow
            _mlflow_client_call(uri, timeout_s)


def _mlflow_client_call(uri: str, timeout_s: float) -> None:
    from mlflow import MlflowClient

    within(timeout_s, lambda: MlflowClient(tracking_uri=uri).search_experiments(max_results=1))


def _http_answers(uri: str, timeout_s: float) -> None:
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return  # it answered (perhaps 401 without the project's credentials): reachable


def configured_mlflow_uris(project: Path, env: str | None) -> tuple[str, str | None]:
    """The tracking and registry URIs of the project's ``mlflow.yml`` (``server.
    mlflow_tracking_uri`` / ``mlflow_registry_uri``), resolved as kedro-mlflow resolves them,
    without opening the stores (a project session would, retrying for minutes) or importing
    MLflow (seconds)."""
    from kedro.config import MissingConfigException

    from deepfake_kedro.project import config_loader

    try:
        raw = dict(config_loader(project, env, config_patterns=_MLFLOW_PATTERNS)["mlflow"])
    except (KeyError, MissingConfigException):
        raw = {}
    server = raw.get("server") or {}
    tracking = server.get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI", "mlruns")
    registry = server.get("mlflow_registry_uri")
    return _absolute_uri(project, tracking), _absolute_uri(project, registry) if registry else None


def _absolute_uri(project: Path, uri: str) -> str:
    """A relative local path made absolute under the project, as kedro-mlflow does."""
    if uri in ("databricks", "databricks-uc") or urlparse(uri).scheme:
        return uri
    path = PurePath(uri)
    return (path if path.is_absolute() else project / path).as_uri()


# ---------------------------------------------------------------------- start-up
def check_stores_at_start(
    project: Path, env: str | None, config: ApiConfig, timeout_s: float = PROBE_TIMEOUT_S
) -> None:
    """Probe the job store and the MLflow store before the API loads the project.

    Raises:
        StoreUnavailable: The first store that cannot be used, with the fix.
    """
    jobs_url = config.resolved_database_url(project)
    try:
        within(timeout_s + 1, lambda: probe_database(jobs_url, None, timeout_s))
    except Exception as err:
        raise StoreUnavailable(
            f"the job store {redact(jobs_url)}",
            _reason(err),
            "Fix: restore it as a readable, writable SQLite file or reachable database, or set "
            "database_url in conf/<env>/api.yml (or DEEPFAKE_KEDRO_API_DATABASE_URL)",
        ) from None
    tracking, registry = configured_mlflow_uris(project, env)
    try:
        within(2 * timeout_s + 1, lambda: probe_mlflow(tracking, registry, started=False,
                                                        timeout_s=timeout_s))
    except Exception as err:
        stores = tracking if not registry or registry == tracking else f"{tracking} / {registry}"
        raise StoreUnavailable(
            f"the MLflow store {redact(stores)}",
            _reason(err),
            "Fix: restore it (a readable, writable database file or a reachable server), or "
            "point server.mlflow_tracking_uri in conf/<env>/mlflow.yml at one",
        ) from None


def _reason(err: BaseException) -> str:
    """One line: the error's type and message."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:500]
