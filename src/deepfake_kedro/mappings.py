"""Nested mappings: one recursive merge for parameter overrides (runtime params, API requests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursively where both hold a mapping under the same key.

    Neither argument is changed; a value of ``override`` that is not a mapping (a list, a
    scalar, ``None``) replaces the value of ``base`` whole.
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
