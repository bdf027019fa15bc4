"""The API's routers, one per resource: ``jobs`` (train, validate, follow, cancel), ``models``
(list, deploy) and ``health``; :func:`~deepfake_kedro.api.app.create_app` includes them."""

from deepfake_kedro.api.routes import health, jobs, models

ROUTERS = (jobs.router, models.router, health.router)

__all__ = ["ROUTERS"]
