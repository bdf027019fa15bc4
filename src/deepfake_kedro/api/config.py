"""Settings of the training API: ``conf/<env>/api.yml`` merged over ``conf/base/api.yml``, then env.

Build them with :func:`load_api_config`; a bad value fails at start with the key named.
Tokens come only from ``conf/local/api.yml`` (not committed) or the environment.
"""

from __future__ import annotations

import os
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_TOKENS = "DEEPFAKE_KEDRO_API_TOKENS"
ENV_DATABASE_URL = "DEEPFAKE_KEDRO_API_DATABASE_URL"
#: The files of the ``api`` configuration key, as Kedro's config loader globs them.
API_CONFIG_PATTERNS = {"api": ["api*", "api*/**"]}


class Role(IntEnum):
    """What a bearer token may do; each role includes the ones below it."""

    read = 1  # list and follow jobs and models
    trainer = 2  # submit training and validation jobs, cancel jobs
    operator = 3  # deploy a version as champion


class ApiConfig(BaseModel):
    """How the API serves, where it keeps jobs and what it accepts.

    Attributes:
        host: Interface to bind. Anything but a loopback address needs a token configured.
        port: TCP port.
        database_url: SQLAlchemy URL of the job store; ``None`` is SQLite in ``jobs_dir``.
        jobs_dir: Folder for each job's run config, progress file and log; relative paths
            are under the project.
        allowed_dataset_roots: Folders (relative to the project or absolute) and
            ``s3://bucket[/prefix]`` roots that ``dataset_path`` manifests must lie under.
        max_concurrent_jobs: Kedro runs executed at the same time.
        max_body_bytes: Largest accepted request body.
        max_attempts: Runs per job when failures are transient (1: no retry).
        retry_backoff_s: Delay before the first retry; doubled for each further one.
        orphaned_jobs: What start-up does with jobs a crashed API left ``running``.
        heartbeat_stale_s: Seconds without a heartbeat after which a running job of another
            (dead) API process is orphaned.
        cancel_grace_s: Seconds between SIGTERM and SIGKILL of a cancelled run.
        tokens: Role name -> bearer tokens.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    database_url: str | None = None
    jobs_dir: str = "data/api"
    allowed_dataset_roots: list[str] = Field(default_factory=lambda: ["data/01_raw"])
    max_concurrent_jobs: int = Field(1, ge=1, le=32)
    max_body_bytes: int = Field(65536, ge=1024)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_backoff_s: float = Field(5.0, ge=0)
    orphaned_jobs: Literal["requeue", "fail"] = "requeue"
    heartbeat_stale_s: float = Field(60.0, gt=0)
    cancel_grace_s: float = Field(10.0, ge=0)
    tokens: dict[Literal["read", "trainer", "operator"], list[str]] = Field(default_factory=dict)

    @field_validator("tokens")
    @classmethod
    def _usable_tokens(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, tokens in value.items():
            short = [t for t in tokens if len(t) < 16]
            if short:
                raise ValueError(
                    f"tokens of role {role!r} must be at least 16 characters "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
                )
        return value

    def token_roles(self) -> dict[str, Role]:
        """Token -> role; a token listed under two roles gets the higher one."""
        roles: dict[str, Role] = {}
        for role, tokens in self.tokens.items():
            for token in tokens:
                roles[token] = max(roles.get(token, Role[role]), Role[role])
        return roles

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token_roles())

    def resolved_jobs_dir(self, project: Path) -> Path:
        path = Path(self.jobs_dir)
        return path if path.is_absolute() else project / path

    def resolved_database_url(self, project: Path) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_jobs_dir(project) / 'jobs.db'}"


def parse_token_env(value: str) -> dict[str, list[str]]:
    """Parse ``role:token,role:token`` (the ``DEEPFAKE_KEDRO_API_TOKENS`` format).

    Raises:
        ValueError: On an item without ``role:`` or an unknown role.
    """
    tokens: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        role, sep, token = item.partition(":")
        if not sep or not token:
            raise ValueError(f"{ENV_TOKENS} items must be role:token; got {role!r}:<...>")
        if role not in Role.__members__:
            raise ValueError(
                f"{ENV_TOKENS}: unknown role {role!r}; allowed: {', '.join(Role.__members__)}"
            )
        tokens.setdefault(role, []).append(token)
    return tokens


def load_api_config(
    project: Path, env: str | None = None, environ: dict[str, str] | None = None
) -> ApiConfig:
    """The API settings of ``project`` in Kedro environment ``env`` (default ``local``).

    Reads ``conf/base/api.yml`` and ``conf/<env>/api.yml`` (soft-merged) through the project's
    own config loader (:func:`deepfake_kedro.project.config_loader`: its resolvers and
    globals work in api.yml), then the environment: ``DEEPFAKE_KEDRO_API_TOKENS`` adds
    tokens, ``DEEPFAKE_KEDRO_API_DATABASE_URL`` sets the job store. Without any api.yml the
    defaults of :class:`ApiConfig` apply.

    Raises:
        ValueError: If a key is unknown or a value is invalid (the message names it).
    """
    from kedro.config import MissingConfigException

    from deepfake_kedro.project import config_loader

    environ = dict(os.environ if environ is None else environ)
    loader = config_loader(
        project, env, config_patterns=API_CONFIG_PATTERNS, merge_strategy={"api": "soft"}
    )
    try:
        raw: dict[str, Any] = dict(loader["api"])
    except (KeyError, MissingConfigException):
        raw = {}
    tokens = {role: list(values) for role, values in (raw.get("tokens") or {}).items()}
    for role, values in parse_token_env(environ.get(ENV_TOKENS, "")).items():
        tokens.setdefault(role, []).extend(values)
    raw["tokens"] = tokens
    if environ.get(ENV_DATABASE_URL):
        raw["database_url"] = environ[ENV_DATABASE_URL]
    try:
        return ApiConfig.model_validate(raw)
    except ValueError as err:
        raise ValueError(f"invalid API settings in conf/*/api.yml or the environment: {err}") from err
