"""Health check of the data lake a run reads from, with one clear line per failure.

Checks, in order (a failed check skips those that depend on it):

1. ``endpoint``     the S3 endpoint answers (wrong URL or port, store down, DNS)
2. ``credentials``  it accepts the access key and secret
3. ``bucket``       the manifest's bucket exists and the key may list it
4. ``manifest``     the manifest object exists and parses as a CSV with ``image_path``
5. ``images``       the first few manifest images are readable through the image store

Every botocore/s3fs error is turned into a sentence naming the setting that fixes it; no
traceback reaches the user. Plain Python (no Kedro): ``kedro lake check`` builds a
:class:`LakeConfig` from the catalog and credentials of an environment, and a run's first
contact with the lake (:mod:`deepfake_kedro.lake.hooks`) runs the first three checks through
:func:`check_access`.

Time budget: each request of the checks waits at most ``connect_timeout`` to connect and
``read_timeout`` for an answer, is tried ``total_max_attempts`` times by botocore and never
again by s3fs (one retry layer, see :mod:`deepfake_kedro.lake.connection`), and the endpoint
check also stops at its deadline (``timeout_s``), so a wrong, closed or silent endpoint is
reported within :data:`CHECK_TIMEOUT_S` seconds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from fsspec.core import url_to_fs
from fsspec.exceptions import FSTimeoutError

from deepfake_kedro.io.image_store import ImageStore
from deepfake_kedro.lake.connection import endpoint_of, use_one_retry_layer

Status = Literal["ok", "failed", "skipped"]

CHECKS = ("endpoint", "credentials", "bucket", "manifest", "images")
_BAD_KEY_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}
#: Deadline of the endpoint check, in seconds: a silent endpoint fails there at the latest.
CHECK_TIMEOUT_S = 15.0
# Fail fast on a wrong endpoint: 2 attempts of at most 5 s each (about 11 s with the backoff)
# stay inside the deadline, which also covers what the socket timeouts do not (DNS). Listing
# one key needs no more, even far from the region. botocore's `max_attempts` counts retries,
# `total_max_attempts` every attempt.
_CHECK_CONFIG = {
    "retries": {"total_max_attempts": 2, "mode": "standard"},
    "connect_timeout": 3,
    "read_timeout": 5,
}


@dataclass(frozen=True)
class LakeConfig:
    """What to check and where each setting comes from (for the messages).

    Args:
        manifest_uri: The manifest (``s3://bucket/prefix/01_raw/manifest.csv``).
        image_root: Folder manifest image paths are relative to.
        storage_options: s3fs options as the datasets get them (``key``, ``secret``,
            ``client_kwargs.endpoint_url``, ``config_kwargs``...).
        allowed_roots: Extra roots absolute image URIs may point under.
        endpoint_source: The setting that holds the endpoint, named in messages.
        credentials_source: The settings that hold the key, named in messages.
        manifest_source: The setting that holds the manifest location, named in messages.
        sample_images: How many manifest images to read (0: none).
        timeout_s: Deadline of the endpoint check, in seconds.
    """

    manifest_uri: str
    image_root: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    allowed_roots: tuple[str, ...] = ()
    endpoint_source: str = "client_kwargs.endpoint_url of the storage options"
    credentials_source: str = "key/secret of the storage options"
    manifest_source: str = "the manifest location"
    sample_images: int = 5
    timeout_s: float = CHECK_TIMEOUT_S


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``name`` (one of :data:`CHECKS`), ``status`` and a message."""

    name: str
    status: Status
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_lake(config: LakeConfig) -> list[CheckResult]:
    """Run the checks in order; a failure marks the checks that depend on it as skipped.

    Returns:
        One :class:`CheckResult` per name of :data:`CHECKS`, in that order.
    """
    results: list[CheckResult] = []
    for result in _run(config):
        results.append(result)
        if result.status == "failed":
            break
    done = {r.name for r in results}
    failed = results[-1].name if results and results[-1].status == "failed" else None
    results += [
        CheckResult(name, "skipped", f"skipped: the {failed} check failed")
        for name in CHECKS
        if name not in done
    ]
    return results


def format_results(results: list[CheckResult]) -> str:
    """One line per check: ``OK|FAILED|SKIPPED  <name>  <message>``."""
    width = max(len(r.name) for r in results)
    return "\n".join(f"{r.status.upper():<8}{r.name:<{width + 2}}{r.message}" for r in results)


def check_access(
    uri: str,
    storage_options: dict[str, Any],
    *,
    endpoint_source: str = "client_kwargs.endpoint_url of the storage options",
    credentials_source: str = "key/secret of the storage options",
    timeout_s: float = CHECK_TIMEOUT_S,
) -> list[CheckResult]:
    """The ``endpoint``, ``credentials`` and ``bucket`` checks for the bucket of an S3 URI.

    One ``list_objects_v2`` request (at most ``timeout_s`` seconds), plus a ``head_bucket``
    when a bare 403 must be told apart. Stops at the first failed check.

    Args:
        uri: An ``s3://bucket/...`` location; only its bucket is listed.
        storage_options: s3fs options as the datasets get them.
        endpoint_source: The setting that holds the endpoint, named in messages.
        credentials_source: The settings that hold the key, named in messages.
        timeout_s: Deadline of the request, in seconds.

    Returns:
        The results in :data:`CHECKS` order, up to and including the first failure.
    """
    fs, path = url_to_fs(uri, **_check_options(storage_options))
    use_one_retry_layer(fs)
    return list(
        _check_bucket(
            fs,
            path.split("/", 1)[0],
            endpoint_of(storage_options),
            endpoint_source,
            credentials_source,
            timeout_s,
        )
    )


def _run(config: LakeConfig) -> Iterator[CheckResult]:
    options = _check_options(config.storage_options)
    fs, manifest_path = url_to_fs(config.manifest_uri, **options)
    use_one_retry_layer(fs)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("s3", "s3a"):
        yield from _check_bucket(
            fs,
            manifest_path.split("/", 1)[0],
            endpoint_of(config.storage_options),
            config.endpoint_source,
            config.credentials_source,
            config.timeout_s,
        )
    else:
        note = f"not on S3 ({config.manifest_uri}): nothing to check; run with --env s3"
        for name in ("endpoint", "credentials", "bucket"):
            yield CheckResult(name, "skipped", note)
    manifest = _check_manifest(fs, manifest_path, config)
    yield manifest[0]
    if manifest[1] is not None:
        yield _check_images(manifest[1], config, options)


def _check_options(storage_options: dict[str, Any]) -> dict[str, Any]:
    options = dict(storage_options)
    options["config_kwargs"] = {**(options.get("config_kwargs") or {}), **_CHECK_CONFIG}
    options["skip_instance_cache"] = True  # never reuse a client built with other settings
    return options


def _check_bucket(
    fs: Any,
    bucket: str,
    endpoint: str | None,
    endpoint_source: str,
    credentials_source: str,
    timeout_s: float,
) -> Iterator[CheckResult]:
    where = endpoint or "the AWS S3 default endpoint"
    try:
        fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1, timeout=timeout_s)
    except Exception as exc:  # every failure becomes one of the messages below
        code = _error_code(exc)
        if _is_connection_error(exc):
            problem = (
                f"{where} accepts connections but sent no answer"
                if _is_silent(exc)
                else f"cannot connect to {where}"
            )
            yield CheckResult(
                "endpoint",
                "failed",
                f"endpoint unreachable: {problem} ({_reason(exc, timeout_s)}). The endpoint is "
                f"set by {endpoint_source}; check the URL, the port and that the store is "
                "running.",
            )
            return
        yield CheckResult("endpoint", "ok", f"{where} answers")
        if _find(exc, (NoCredentialsError, PartialCredentialsError)) is not None:
            yield CheckResult(
                "credentials",
                "failed",
                f"invalid credentials: no access key found. Set {credentials_source}.",
            )
        elif code in _BAD_KEY_CODES or (
            code in ("403", "Forbidden") and not _bucket_exists(fs, bucket, timeout_s)
        ):
            yield CheckResult(
                "credentials",
                "failed",
                f"invalid credentials: {where} rejected the access key or secret ({code}). "
                f"Check {credentials_source}.",
            )
        elif code in ("NoSuchBucket", "404", "NotFound"):
            yield CheckResult("credentials", "ok", "the access key is accepted")
            yield CheckResult(
                "bucket",
                "failed",
                f"missing bucket: '{bucket}' does not exist on {where}. Create it, or set the "
                "lake's bucket (DEEPFAKE_LAKE_BUCKET or --params lake_bucket=...).",
            )
        elif code in ("AccessDenied", "AllAccessDisabled", "403", "Forbidden"):
            yield CheckResult("credentials", "ok", "the access key is accepted")
            yield CheckResult(
                "bucket",
                "failed",
                f"access denied to bucket '{bucket}': the key's policy must allow s3:ListBucket "
                "and s3:GetObject/PutObject on it.",
            )
        else:
            yield CheckResult(
                "credentials",
                "failed",
                f"unexpected answer from {where} while listing '{bucket}': {_reason(exc)}. Is "
                f"{endpoint_source} an S3 endpoint?",
            )
        return
    yield CheckResult("endpoint", "ok", f"{where} answers")
    yield CheckResult("credentials", "ok", "the access key is accepted")
    yield CheckResult("bucket", "ok", f"bucket '{bucket}' exists and can be listed")


def _bucket_exists(fs: Any, bucket: str, timeout_s: float) -> bool:
    """Whether HEAD on the bucket succeeds (a bare 403 may mean a bad key or no permission)."""
    try:
        fs.call_s3("head_bucket", Bucket=bucket, timeout=timeout_s)
    except Exception:  # any failure: not known to exist
        return False
    return True


def _check_manifest(fs: Any, path: str, config: LakeConfig) -> tuple[CheckResult, list[str] | None]:
    uri = config.manifest_uri
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return CheckResult(
            "manifest",
            "failed",
            f"missing manifest: no object at {uri}. Upload it there, or point "
            f"{config.manifest_source} at it.",
        ), None
    except Exception as exc:
        return CheckResult(
            "manifest", "failed", f"cannot read manifest {uri}: {_reason(exc)}"
        ), None
    try:
        manifest = pd.read_csv(io.BytesIO(data))
    except Exception as exc:
        return CheckResult(
            "manifest", "failed", f"manifest {uri} is not a CSV: {_reason(exc)}"
        ), None
    if "image_path" not in manifest.columns:
        return CheckResult(
            "manifest",
            "failed",
            f"manifest {uri} has no image_path column (columns: {', '.join(map(str, manifest.columns))})",
        ), None
    if manifest.empty:
        return CheckResult("manifest", "failed", f"manifest {uri} has no rows"), None
    return (
        CheckResult("manifest", "ok", f"{uri} is readable ({len(manifest)} rows)"),
        manifest["image_path"].astype(str).tolist(),
    )


def _check_images(paths: list[str], config: LakeConfig, options: dict[str, Any]) -> CheckResult:
    sample = paths[: config.sample_images]
    if not sample:
        return CheckResult("images", "skipped", "sample_images is 0")
    store = ImageStore(config.image_root, options, config.allowed_roots)
    use_one_retry_layer(store.fs)
    bad = [
        (p, r)
        for p, r in zip(sample, store.read_many(sample), strict=True)
        if isinstance(r, Exception)
    ]
    if bad:
        path, error = bad[0]
        return CheckResult(
            "images",
            "failed",
            f"{len(bad)} of the first {len(sample)} manifest images cannot be read under "
            f"{config.image_root}; first: {path!r} ({_reason(error)})",
        )
    return CheckResult("images", "ok", f"the first {len(sample)} manifest images are readable")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _find(exc: BaseException, kinds: tuple[type, ...]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kinds)), None)


def _error_code(exc: BaseException) -> str | None:
    client_error = _find(exc, (ClientError,))
    if client_error is None:
        return None
    return str(client_error.response.get("Error", {}).get("Code") or "") or None


def _is_connection_error(exc: BaseException) -> bool:
    if _find(exc, (BotoConnectionError, HTTPClientError, FSTimeoutError, TimeoutError)):
        return True
    # aiohttp's connector errors when botocore does not wrap them
    return any(type(e).__name__.startswith("ClientConnector") for e in _chain(exc))


def _is_silent(exc: BaseException) -> bool:
    """A read timeout or the deadline: the endpoint took the connection and never answered."""
    return _find(exc, (ReadTimeoutError, FSTimeoutError, TimeoutError)) is not None


def _reason(exc: BaseException, timeout_s: float | None = None) -> str:
    if timeout_s is not None and isinstance(exc, FSTimeoutError):  # the deadline of the call
        return f"no answer within {timeout_s:g} s"
    root = _find(exc, (ClientError, BotoCoreError)) or exc
    text = str(root).strip().splitlines()[0] if str(root).strip() else ""
    return f"{type(root).__name__}: {text}" if text else type(root).__name__
