"""Kedro wiring of the lake: a run's first contact with S3, before any node or MLflow run.

Without it, a run against a wrong, closed or silent endpoint failed in its first dataset
load, minutes later (every retry layer waiting on the silent socket) and with a traceback of
hundreds of lines that buried the URL. :class:`LakeHooks` checks each S3 location of the
pipeline once (endpoint, key, bucket: :func:`deepfake_kedro.lake.health.check_access`, within
:data:`~deepfake_kedro.lake.health.CHECK_TIMEOUT_S` seconds) and stops the run with one line
that names the endpoint, the setting and the fix.

Why a ``before_pipeline_run`` hook rather than a probe in a dataset's first load: the first
load of ``data_ingestion`` is the manifest (a CSV dataset), not the image store, and other
pipelines start from other datasets; the hook sees every dataset of the run, and runs
``tryfirst``, before kedro-mlflow opens an MLflow run that the failure would leave behind.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from kedro.framework.hooks import hook_impl

from deepfake_kedro.lake.connection import (
    LakeLocation,
    lake_locations,
    use_lake_budget_for_boto3,
    use_one_retry_layer,
)

logger = logging.getLogger(__name__)


class LakeUnreachableError(click.ClickException):
    """The run's data lake cannot be used; the message is one line with the fix.

    A ``ClickException``: ``kedro run`` prints ``Error: <message>`` and exits 1 instead of a
    traceback. Called from Python (the API worker, a notebook), it is a plain exception.
    """


class LakeHooks:
    """Check the S3 locations of a run before it starts, and give them one retry budget."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Apply the lake's budget and check each S3 location of ``pipeline``.

        Raises:
            LakeUnreachableError: if an endpoint does not answer, rejects the key, or lacks
                the bucket.
        """
        locations = lake_locations(_resolved_configs(pipeline, catalog))
        if not locations:
            return
        use_one_retry_layer()
        use_lake_budget_for_boto3(locations[0].storage_options)
        env = run_params.get("env") or "local"
        for location in locations:
            _check(location, env)


def _resolved_configs(pipeline: Any, catalog: Any) -> dict[str, dict[str, Any]]:
    """Catalog entries (credentials resolved, factory patterns filled) of the pipeline."""
    resolver = getattr(catalog, "config_resolver", None)
    if resolver is None:
        return {}
    configs: dict[str, dict[str, Any]] = {}
    inputs = pipeline.inputs()  # named first: they are read first
    for name in sorted(inputs) + sorted(pipeline.datasets() - inputs):
        if name.startswith("params:") or name == "parameters":
            continue
        try:
            config = resolver.resolve_pattern(name)
        except Exception:  # a name the resolver cannot place is not a file dataset
            logger.debug("No catalog entry to check for %s", name, exc_info=True)
            continue
        if isinstance(config, dict):
            configs[name] = config
    return configs


def _check(location: LakeLocation, env: str) -> None:
    from deepfake_kedro.lake.health import check_access  # botocore and pandas: S3 runs only

    logger.info(
        "Checking the data lake s3://%s on %s before the run",
        location.bucket,
        location.endpoint or "AWS S3",
    )
    results = check_access(
        location.uri,
        location.storage_options,
        endpoint_source=f"AWS_ENDPOINT_URL (client_kwargs.endpoint_url of the credentials in "
        f"conf/{env}/credentials.yml)",
        credentials_source=f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (key/secret of the "
        f"credentials in conf/{env}/credentials.yml)",
    )
    failed = next((r for r in results if r.status == "failed"), None)
    if failed is not None and failed.name == "bucket" and failed.message.startswith("access"):
        # A key may read and write objects without s3:ListBucket: let the datasets try.
        logger.warning("Data lake check of s3://%s: %s", location.bucket, failed.message)
        return
    if failed is None:
        logger.info("Data lake s3://%s answers (%d datasets)", location.bucket, len(location.datasets))
        return
    first = location.datasets[0]
    more = f" and {len(location.datasets) - 1} more" if len(location.datasets) > 1 else ""
    raise LakeUnreachableError(
        f"the data lake of this run cannot be used (dataset '{first}'{more} in "
        f"s3://{location.bucket}): {failed.message} Details: kedro lake check --env {env}"
    )
