"""A content fingerprint of a validated (and optionally split) manifest.

The fingerprint identifies the training data of a run (MLflow tag ``dataset_fingerprint``):
it depends on every image's path, label, source, content hash and split, not on row order,
so the same data always gives the same fingerprint and any changed image, label or path
gives a new one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from deepfake_kedro.values import iso, utc_now

FINGERPRINT_COLUMNS = ("image_path", "label", "source_id", "content_hash")


def dataset_fingerprint(manifest: pd.DataFrame) -> dict[str, Any]:
    """Summarise a manifest into a fingerprint and counts (JSON-serialisable).

    Args:
        manifest: Validated manifest (with ``content_hash`` from ``validate_manifest``),
            optionally with a ``split`` column.

    Returns:
        ``fingerprint`` (sha256 over the sorted rows of image_path, label, source_id,
        content_hash and split when present), ``manifest_hash`` (sha256 over the whole table
        in canonical form: columns sorted by name, rows sorted, the input-order ``row``
        column left out), ``n_images``, ``n_real``, ``n_fake``, ``n_sources``, ``per_split``
        (only with a ``split`` column), ``oldest_captured_at``/``newest_captured_at``
        (ISO-8601 UTC or None) and ``created_at`` (now, ISO-8601 UTC).

    Raises:
        ValueError: if a column the fingerprint needs is missing.
    """
    missing = [c for c in FINGERPRINT_COLUMNS if c not in manifest.columns]
    if missing:
        hint = (
            " (content_hash is computed by validate_manifest; fingerprint the validated "
            "manifest, which never re-reads the images)"
            if "content_hash" in missing
            else ""
        )
        raise ValueError(
            f"cannot fingerprint the manifest: missing column(s) {', '.join(missing)}{hint}; "
            f"columns present: {', '.join(map(str, manifest.columns))}"
        )
    if manifest["content_hash"].isna().any():
        raise ValueError(
            f"cannot fingerprint the manifest: {int(manifest['content_hash'].isna().sum())} "
            "rows have no content_hash"
        )
    columns = [*FINGERPRINT_COLUMNS, *(["split"] if "split" in manifest.columns else [])]
    rows = sorted(
        zip(*(manifest[c].map(_text).tolist() for c in columns), strict=True)
    )
    fingerprint = _sha256_json({"columns": columns, "rows": rows})

    labels = manifest["label"].astype(str)
    summary: dict[str, Any] = {
        "fingerprint": fingerprint,
        "manifest_hash": _manifest_hash(manifest),
        "n_images": int(len(manifest)),
        "n_real": int((labels == "real").sum()),
        "n_fake": int((labels == "fake").sum()),
        "n_sources": int(manifest["source_id"].nunique()),
    }
    if "split" in manifest.columns:
        summary["per_split"] = {
            str(name): {
                "n": int(len(part)),
                "n_real": int((part["label"] == "real").sum()),
                "n_fake": int((part["label"] == "fake").sum()),
            }
            for name, part in manifest.groupby("split", sort=True)
        }
    oldest, newest = _captured_range(manifest)
    summary["newest_captured_at"] = newest
    summary["oldest_captured_at"] = oldest
    summary["created_at"] = utc_now()
    return summary


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _sha256_json(payload: Any) -> str:
    encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def _manifest_hash(manifest: pd.DataFrame) -> str:
    columns = sorted(str(c) for c in manifest.columns if c != "row")
    rows = sorted(
        zip(*(manifest[c].map(_text).tolist() for c in columns), strict=True)
    ) if columns else []
    return _sha256_json({"columns": columns, "rows": rows})


def _captured_range(manifest: pd.DataFrame) -> tuple[str | None, str | None]:
    if "captured_at" not in manifest.columns:
        return None, None
    times = pd.to_datetime(manifest["captured_at"], utc=True, errors="coerce", format="ISO8601")
    times = times.dropna()
    if times.empty:
        return None, None
    return iso(times.min()), iso(times.max())
