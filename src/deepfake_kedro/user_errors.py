"""Errors a user makes (bad data, bad configuration, a busy project) versus bugs.

A user error is shown as its message alone: the message names the key or the file and the fix,
and a traceback of Kedro's internals around it only hides that. ``DEEPFAKE_KEDRO_DEBUG=1``
brings the traceback back (docs/troubleshooting.md). Everything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import os
from functools import cache

#: Set to 1 (or true/yes) to see the traceback of a user error too.
DEBUG_ENV = "DEEPFAKE_KEDRO_DEBUG"


def debugging() -> bool:
    """Whether ``$DEEPFAKE_KEDRO_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@cache
def _user_error_types() -> tuple[type[BaseException], ...]:
    from kedro.config import BadConfigException, MissingConfigException
    from kedro.validation.exceptions import DataValidationError as KedroDataValidationError
    from kedro.validation.exceptions import ParameterValidationError
    from omegaconf.errors import OmegaConfBaseException
    from pydantic import ValidationError

    from deepfake_kedro.ingestion.validation import DataValidationError
    from deepfake_kedro.project_lock import LockHeldError, LockSettingError

    return (
        DataValidationError,  # the manifest and its images (ingestion)
        LockHeldError,  # another writer holds the project
        LockSettingError,
        ParameterValidationError,  # parameters Kedro validated against a node's pydantic type
        KedroDataValidationError,
        ValidationError,  # a parameter group validated by the project's own code
        MissingConfigException,  # configuration files and their interpolations
        BadConfigException,
        OmegaConfBaseException,
    )


def user_error(error: BaseException) -> BaseException | None:
    """The user error behind ``error``: itself or one it was raised ``from``; else ``None``.

    Kedro wraps a dataset's load error (``DatasetError ... from <cause>``), so the chain of
    causes is followed; an exception raised while handling another (``__context__``) is not
    one of them.
    """
    kinds = _user_error_types()
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None
