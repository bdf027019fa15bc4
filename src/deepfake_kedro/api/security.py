"""What the API lets in: bearer tokens and roles, dataset paths, bind address, body size."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from deepfake_kedro.api.config import ENV_TOKENS, Role

LOOPBACK_HOST = "127.0.0.1"

_bearer = HTTPBearer(auto_error=False, description="Token of role read, trainer or operator")
_BEARER = Depends(_bearer)


class DatasetPathError(ValueError):
    """A ``dataset_path`` the API will not read; ``status_code`` is 400 (malformed) or 403."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class DatasetLocation:
    """Where a checked manifest is and the root its image paths are relative to."""

    manifest: str
    image_root: str


def check_bind_host(host: str, auth_enabled: bool) -> None:
    """Refuse a non-loopback bind while no token is configured.

    Raises:
        ValueError: Saying how to configure a token.
    """
    if not auth_enabled and host != LOOPBACK_HOST:
        raise ValueError(
            f"no API token is configured, so the server binds only {LOOPBACK_HOST}, not {host!r}: "
            f"set {ENV_TOKENS}=operator:<token> or `tokens` in conf/local/api.yml"
        )


def check_dataset_path(path: str, allowed_roots: list[str], project: Path) -> DatasetLocation:
    """Accept a manifest path only under an allowed root, with no way out of it.

    Local paths (absolute or relative to the project) must not contain ``..`` and must resolve,
    symlinks followed, to a file under an allowed folder. ``s3://bucket/key`` must lie under
    an allowed ``s3://`` root. Other schemes (``file://``, ``http://``) are refused.

    Raises:
        DatasetPathError: 400 for a malformed or missing path, 403 for one outside the roots.
    """
    raw = path.strip()
    if not raw:
        raise DatasetPathError("dataset_path is empty")
    if any(ch in raw for ch in ("\x00", "\n", "\r")) or "${" in raw:
        raise DatasetPathError("dataset_path may not contain control characters or '${'")
    if "://" in raw:
        scheme = raw.split("://", 1)[0].lower()
        if scheme != "s3":
            raise DatasetPathError(
                f"dataset_path scheme {scheme}:// is not accepted; use a local path under an "
                "allowed root or an s3:// URI"
            )
        return _check_s3(raw, allowed_roots)
    if ".." in PurePosixPath(raw).parts:
        raise DatasetPathError(f"dataset_path {raw!r} contains '..'; give a path without it")
    candidate = Path(raw) if Path(raw).is_absolute() else project / raw
    candidate = Path(os.path.normpath(candidate))
    roots = [_local_root(root, project) for root in allowed_roots if "://" not in root]
    root = next((r for r in roots if _under(candidate, r)), None)
    if root is None:
        raise DatasetPathError(
            f"dataset_path {raw!r} is outside the allowed dataset roots "
            f"({', '.join(map(str, roots)) or 'none configured'})",
            403,
        )
    real = Path(os.path.realpath(candidate))
    if not _under(real, Path(os.path.realpath(root))):
        raise DatasetPathError(
            f"dataset_path {raw!r} resolves through a symlink to {real}, outside its allowed "
            f"root {root}",
            403,
        )
    if not real.is_file():
        raise DatasetPathError(f"dataset_path {raw!r}: no manifest file there")
    return DatasetLocation(manifest=str(real), image_root=str(real.parent))


def _check_s3(uri: str, allowed_roots: list[str]) -> DatasetLocation:
    key = uri.split("://", 1)[1]
    parts = key.split("/")
    if ".." in parts or "." in parts or not parts[0] or key.endswith("/"):
        raise DatasetPathError(
            f"dataset_path {uri!r} must be s3://bucket/path/to/manifest.csv without '.' or '..'"
        )
    roots = [r.rstrip("/") for r in allowed_roots if r.lower().startswith("s3://")]
    normalized = f"s3://{key}"
    if not any(normalized.startswith(root + "/") for root in roots):
        raise DatasetPathError(
            f"dataset_path {uri!r} is outside the allowed buckets/prefixes "
            f"({', '.join(roots) or 'no s3:// root configured'})",
            403,
        )
    return DatasetLocation(manifest=normalized, image_root=normalized.rsplit("/", 1)[0])


def _local_root(root: str, project: Path) -> Path:
    path = Path(root)
    return Path(os.path.normpath(path if path.is_absolute() else project / path))


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def require_role(role: Role) -> Callable[..., Role | None]:
    """FastAPI dependency: the caller's bearer token must have at least ``role``.

    With no token configured (loopback-only mode) everyone passes and it returns ``None``.
    """

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = _BEARER,
    ) -> Role | None:
        token_roles: dict[str, Role] = request.app.state.token_roles
        if not token_roles:
            return None
        if credentials is None:
            raise HTTPException(
                401,
                "missing bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        got = _lookup(credentials.credentials, token_roles)
        if got is None:
            raise HTTPException(401, "unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
        if got < role:
            raise HTTPException(
                403, f"this endpoint needs the {role.name} role; the token has role {got.name}"
            )
        return got

    return dependency


def _lookup(token: str, token_roles: dict[str, Role]) -> Role | None:
    found = None
    for known, role in token_roles.items():  # compare every token: no timing oracle
        if hmac.compare_digest(known.encode(), token.encode()):
            found = role
    return found


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodySizeLimitMiddleware:
    """ASGI middleware answering 413 to request bodies over ``max_bytes``.

    The body is read (up to the limit) before the app sees it, so chunked uploads without a
    ``Content-Length`` are bounded too.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(send)
            return
        if length is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._reject(send)
                return
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        payload = json.dumps(
            {"detail": f"request body is larger than the limit of {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
