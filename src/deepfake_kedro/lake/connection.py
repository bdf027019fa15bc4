"""How the project talks to the lake: one retry layer, one time budget, one first contact.

A request to S3 can be retried by three layers: botocore (``config_kwargs.retries`` of the
storage options), s3fs around every call (``S3FileSystem.retries``, 5 by default, which no
storage option sets) and the caller. Their product multiplies the timeouts: with a silent
endpoint, 5 s3fs tries x 3 botocore attempts x a 20 s read timeout kept ``kedro lake check``
waiting 5 minutes. Here botocore is the one layer that retries (throttling, 5xx answers,
dropped connections and timeouts, with adaptive client-side rate limiting), and s3fs tries
once, so one call of a dead or silent endpoint fails within
``total_max_attempts x (connect_timeout | read_timeout)`` plus botocore's backoff (about 27 s
with conf/s3/globals.yml: 3 x 8 s + at most 3 s).

MLflow's S3 artifact store builds its own boto3 client, configured by no MLflow setting:
:func:`use_lake_budget_for_boto3` gives boto3's default session (which MLflow's client comes
from) the same timeouts and retries.

Plain Python (no Kedro): :mod:`deepfake_kedro.lake.hooks` applies it to a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: s3fs's own tries per call: 1, since botocore already retries the same errors.
S3FS_TRIES = 1
S3_PROTOCOLS = ("s3", "s3a")
# The botocore Config options of the lake's budget that also apply to a plain boto3 client.
_BUDGET_KEYS = ("connect_timeout", "read_timeout", "retries")


@dataclass(frozen=True)
class LakeLocation:
    """One bucket on one endpoint with one key, and the datasets stored there.

    Attributes:
        uri: The first dataset location in the bucket (``s3://bucket/...``).
        bucket: The bucket.
        endpoint: The endpoint URL, ``None`` for AWS S3's default.
        storage_options: s3fs options of the datasets (credentials and fs_args).
        datasets: Names of the datasets stored in the bucket, in pipeline order.
    """

    uri: str
    bucket: str
    endpoint: str | None
    storage_options: dict[str, Any]
    datasets: tuple[str, ...]


def endpoint_of(storage_options: Mapping[str, Any]) -> str | None:
    """The endpoint URL s3fs uses (``client_kwargs.endpoint_url`` or ``endpoint_url``)."""
    client_kwargs = storage_options.get("client_kwargs") or {}
    return client_kwargs.get("endpoint_url") or storage_options.get("endpoint_url") or None


def lake_locations(configs: Mapping[str, Mapping[str, Any]]) -> list[LakeLocation]:
    """The distinct S3 locations (bucket, endpoint, key) of resolved dataset configurations.

    Args:
        configs: Dataset name -> its catalog entry with credentials resolved (a mapping
            with ``filepath`` or ``path``, ``credentials`` and ``fs_args``; wrapper datasets
            hold theirs under ``dataset``).

    Returns:
        One :class:`LakeLocation` per bucket, endpoint and access key, in order of first use.
    """
    found: dict[tuple[Any, ...], LakeLocation] = {}
    for name, config in configs.items():
        for holder in _holders(config):
            uri = holder.get("filepath", holder.get("path"))
            if not isinstance(uri, str) or uri.split("://", 1)[0] not in S3_PROTOCOLS:
                continue
            credentials = holder.get("credentials")
            fs_args = {
                k: v
                for k, v in (holder.get("fs_args") or {}).items()
                if not k.startswith("open_args")
            }
            options = {**fs_args, **(credentials if isinstance(credentials, Mapping) else {})}
            bucket = uri.split("://", 1)[1].split("/", 1)[0]
            key = (bucket, endpoint_of(options), options.get("key"))
            if key in found:
                known = found[key]
                if name not in known.datasets:
                    found[key] = LakeLocation(
                        known.uri, bucket, known.endpoint, known.storage_options,
                        (*known.datasets, name),
                    )
            else:
                found[key] = LakeLocation(uri, bucket, key[1], options, (name,))
    return list(found.values())


def _holders(config: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The entry and the entries it wraps (``dataset:`` of MLflow and partitioned datasets)."""
    yield config
    inner = config.get("dataset")
    if isinstance(inner, Mapping):
        yield from _holders(inner)


def use_one_retry_layer(fs: Any = None) -> None:
    """Let s3fs try each call once, leaving retries to botocore's budget.

    Args:
        fs: An ``S3FileSystem`` to set; ``None`` sets the class, for every S3 filesystem
            of the process (kedro-datasets build their own, which no storage option reaches).
    """
    from s3fs import S3FileSystem

    if fs is None:
        S3FileSystem.retries = S3FS_TRIES
    elif isinstance(fs, S3FileSystem):
        fs.retries = S3FS_TRIES


def budget(storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """The timeouts and retries of storage options (the botocore ``config_kwargs`` part)."""
    config_kwargs = storage_options.get("config_kwargs") or {}
    return {k: config_kwargs[k] for k in _BUDGET_KEYS if k in config_kwargs}


def use_lake_budget_for_boto3(storage_options: Mapping[str, Any]) -> None:
    """Give boto3's default session the lake's timeouts and retries (MLflow's S3 client).

    MLflow 3 builds its S3 artifact client with ``boto3.client("s3", config=...)`` and no
    timeouts or retries of its own; botocore merges that config over the session's default
    client config, so the lake's settings apply to MLflow's artifact uploads and downloads.
    A no-op when the storage options set neither timeouts nor retries.
    """
    settings = budget(storage_options)
    if not settings:
        return
    import boto3
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    session.set_default_client_config(Config(**settings))
    boto3.setup_default_session(botocore_session=session)
    logger.debug("boto3 clients (MLflow's S3 artifact store) use %s", settings)
