"""Fan-out of feature extraction: one report per shard, gathered into the branch's report.

A branch's extraction can run as ``num_shards`` workers (Airflow mapped tasks, or
``kedro run --params feature_extraction.runtime.shard_index=i``); each extracts the content
hashes of its shard into the shared feature cache and writes its own report, under
:func:`shard_key`. Once all have run, :func:`gather_reports` makes the one report of the
extraction: the shards' counts added up, each shard's own numbers kept under ``shards``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Counts that add up over the shards (each shard handles a disjoint set of hashes).
SUMMED = ("n_in_shard", "n_cached", "n_extracted", "n_shard_files_written", "seconds")
#: Kept per shard under ``shards`` in the gathered report.
PER_SHARD = ("shard_index", "n_in_shard", "n_cached", "n_extracted", "seconds", "device")
_KEY = re.compile(r"^shard-(\d+)-of-(\d+)$")


class MissingShardsError(RuntimeError):
    """Some shards of an extraction have no report: they have not run (or failed)."""


class ShardMismatchError(RuntimeError):
    """Shard reports that cannot belong to one extraction (another backbone or manifest)."""


def shard_key(shard_index: int, num_shards: int) -> str:
    """The name of a shard's report, ``shard-0001-of-0004``: sorts in shard order."""
    return f"shard-{shard_index:04d}-of-{num_shards:04d}"


def parse_shard_key(key: str) -> tuple[int, int] | None:
    """``(shard_index, num_shards)`` of a :func:`shard_key`, else None."""
    match = _KEY.match(key)
    return (int(match[1]), int(match[2])) if match else None


def gather_reports(
    reports: Mapping[str, Mapping[str, Any]], num_shards: int, *, branch: str
) -> dict[str, Any]:
    """The report of an extraction in ``num_shards`` shards, from the shards' own reports.

    Args:
        reports: Shard reports by :func:`shard_key`; those of another shard count (an
            earlier fan-out) are ignored.
        num_shards: The shard count of this extraction (``feature_extraction.runtime``).
        branch: The branch, for the messages.

    Returns:
        Shard 0's report with the :data:`SUMMED` counts (and each nested ``n_extracted``:
        augmented views, synthetic fakes) added up over the shards, ``images_per_s`` over
        the shards' summed time, ``num_shards`` and ``shards`` (each shard's
        :data:`PER_SHARD` numbers); no top-level ``shard_index``.

    Raises:
        MissingShardsError: naming the shards without a report and how to run them.
        ShardMismatchError: if the shards disagree on the cache identity or the manifest.
    """
    wanted = [shard_key(i, num_shards) for i in range(num_shards)]
    missing = [i for i, key in enumerate(wanted) if key not in reports]
    if missing:
        raise MissingShardsError(
            f"{branch}: extraction shard(s) {missing} of {num_shards} have no report (not run "
            f"yet, or failed): run `kedro run --nodes {branch}.extract_features_node --params "
            "feature_extraction.runtime.shard_index=<i>` for each (or the DAG's mapped "
            "extraction tasks), then gather"
        )
    shards = [dict(reports[key]) for key in wanted]
    first = shards[0]
    for field in ("identity", "n_manifest", "n_unique"):
        values = {repr(shard.get(field)) for shard in shards}
        if len(values) > 1:
            raise ShardMismatchError(
                f"{branch}: the {num_shards} shard reports disagree on {field!r} ({sorted(values)}): "
                "they come from different extractions; run every shard again on the same "
                "manifest and backbone"
            )
    gathered = {key: value for key, value in first.items() if key != "shard_index"}
    for field in SUMMED:
        if field in first:
            gathered[field] = sum(shard.get(field, 0) for shard in shards)
    gathered["seconds"] = round(float(gathered.get("seconds", 0.0)), 3)
    for field, value in first.items():
        if isinstance(value, Mapping) and "n_extracted" in value:
            gathered[field] = {
                **value,
                "n_extracted": sum(int(shard[field]["n_extracted"]) for shard in shards),
            }
    seconds = gathered["seconds"]
    gathered["images_per_s"] = (
        round(gathered.get("n_extracted", 0) / seconds, 2)
        if seconds and gathered.get("n_extracted")
        else 0.0
    )
    gathered["num_shards"] = num_shards
    gathered["shards"] = [{k: shard.get(k) for k in PER_SHARD} for shard in shards]
    return gathered
