"""Health route: can the API use its job database, the MLflow store and the data roots now?

Each store is probed on a new connection with a short timeout
(:mod:`deepfake_kedro.api.probes`), never through the pooled connections the API keeps open:
those go on answering after a database file has become unreadable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deepfake_kedro.api.config import ApiConfig
from deepfake_kedro.api.dependencies import Project, Settings, Store
from deepfake_kedro.api.jobs import JobStore
from deepfake_kedro.api.probes import (
    JOBS_TABLE,
    PROBE_TIMEOUT_S,
    probe_database,
    probe_mlflow,
    redact,
    within,
)
from deepfake_kedro.api.schemas import HealthCheck, HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(store: Store, project: Project, config: Settings) -> JSONResponse:
    """Whether the job database, the MLflow store and the allowed data roots can be used
    (200), or which cannot (503, the failing check with `ok: false` and the reason)."""
    probes: dict[str, tuple[Callable[[], Any], str]] = {
        "database": (lambda: _probe_jobs(store), f"job store {redact(store.url)}"),
        "mlflow": (lambda: probe_mlflow(project.tracking_uri, project.registry_uri),
                   f"MLflow store {redact(project.tracking_uri)}"),
        "data_store": (lambda: _data_roots_reachable(config, project.path),
                       f"dataset roots {', '.join(config.allowed_dataset_roots)}"),
    }
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = {name: pool.submit(_check, probe, what) for name, (probe, what) in probes.items()}
        checks = {name: future.result() for name, future in futures.items()}
    ok = all(check.ok for check in checks.values())
    out = HealthOut(status="ok" if ok else "degraded", checks=checks)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if ok else 503)


def _probe_jobs(store: JobStore) -> None:
    probe_database(store.url, JOBS_TABLE)


def _check(
    probe: Callable[[], Any], what: str, timeout_s: float = PROBE_TIMEOUT_S + 2
) -> HealthCheck:
    """Run ``probe`` for at most ``timeout_s``; report, never raise: health must answer."""
    try:
        within(timeout_s, probe)
        return HealthCheck(ok=True, detail=f"{what}: reachable")
    except Exception as err:
        detail = " ".join(f"{what}: {type(err).__name__}: {err}".split())  # one line
        return HealthCheck(ok=False, detail=detail[:500])


def _data_roots_reachable(config: ApiConfig, project: Path) -> None:
    for root in config.allowed_dataset_roots:
        if root.lower().startswith("s3://"):
            import fsspec

            fsspec.filesystem("s3").ls(root.removeprefix("s3://").removeprefix("S3://"))
            continue
        path = Path(root) if Path(root).is_absolute() else project / root
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            raise FileNotFoundError(f"{path} is not a readable folder")
