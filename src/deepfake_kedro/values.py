"""Small value helpers shared across the project: one UTC timestamp format, finite floats.

Every timestamp the project writes (checkpoints, reports, MLflow tags, API state) is UTC
in ISO 8601 with a ``Z`` suffix and whole seconds, e.g. ``2026-12-01T23:11:54Z``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    """The current time as a project timestamp."""
    return iso(datetime.now(UTC))


def iso(value: datetime | None) -> str | None:
    """``value`` as a project timestamp (naive datetimes are taken as UTC); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def iso_from_millis(millis: int | None) -> str | None:
    """A project timestamp from epoch milliseconds (MLflow's timestamps)."""
    return None if millis is None else iso(datetime.fromtimestamp(millis / 1000, UTC))


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (JSON-safe)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
