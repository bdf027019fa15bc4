"""Health route: can the API reach its job database, the MLflow store and the data roots?"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deepfake_kedro.api.config import ApiConfig
from deepfake_kedro.api.dependencies import Client, Project, Settings, Store
from deepfake_kedro.api.schemas import HealthCheck, HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(store: Store, project: Project, config: Settings, client: Client) -> JSONResponse:
    """Reachability of the job database, the MLflow store and the allowed data roots."""
    checks = {
        "database": _check(store.ping, f"job store {_redact(store.url)}"),
        "mlflow": _check(lambda: client.search_experiments(max_results=1),
                         f"MLflow store {_redact(project.tracking_uri)}"),
        "data_store": _check(lambda: _data_roots_reachable(config, project.path),
                             f"dataset roots {', '.join(config.allowed_dataset_roots)}"),
    }
    ok = all(check.ok for check in checks.values())
    out = HealthOut(status="ok" if ok else "degraded", checks=checks)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if ok else 503)


def _redact(url: str) -> str:
    """A URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _check(probe: Callable[[], Any], what: str, timeout_s: float = 5.0) -> HealthCheck:
    """Run ``probe`` for at most ``timeout_s``; report, never raise: health must answer."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(probe).result(timeout=timeout_s)
        return HealthCheck(ok=True, detail=f"{what}: reachable")
    except Exception as err:
        return HealthCheck(ok=False, detail=f"{what}: {type(err).__name__}: {err}"[:500])
    finally:
        pool.shutdown(wait=False)


def _data_roots_reachable(config: ApiConfig, project: Path) -> None:
    for root in config.allowed_dataset_roots:
        if root.lower().startswith("s3://"):
            import fsspec

            fsspec.filesystem("s3").ls(root.removeprefix("s3://").removeprefix("S3://"))
            continue
        path = Path(root) if Path(root).is_absolute() else project / root
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            raise FileNotFoundError(f"{path} is not a readable folder")
