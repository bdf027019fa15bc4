"""An incremental extraction with 10% new images against the full extraction before it.

For each default branch (``feature_extraction`` in conf/base; compile off, as configured): build
the extractor once, then

1. full: ``update_cache`` of the base images into an empty cache;
2. incremental: ``update_cache`` of base + 10% new images (demo images of another seed,
   appended to the manifest) into the same cache; only the new ones are extracted.

Both runs need the extractor, so the main ratio times the ``update_cache`` calls only; a second
ratio adds the extractor build to both sides. Afterwards the features are copied into the
persistent cache (``results/cache``) that the quality benchmark reads.
"""

from __future__ import annotations

import math
import tempfile
import time

import pandas as pd

from benchmarks.common import (
    CACHE,
    RESULTS,
    Result,
    Table,
    backbone_config,
    benchmark_demo_config,
    branches,
    demo_config,
    demo_dataset,
    fmt,
    image_store,
    ingest,
    runtime_config,
)
from deepfake_kedro.features import FeatureCache, FeatureCacheRoot, update_cache
from deepfake_kedro.models import build_extractor

TARGET = 0.15
NEW_FRACTION = 0.10
NEW_SEED = 1


def _copy_missing(source: FeatureCache, target: FeatureCache, rows_per_shard: int) -> int:
    """Write the source's features that the target lacks into the target; return how many."""
    missing = sorted(source.cached_hashes() - target.cached_hashes())
    for i in range(0, len(missing), rows_per_shard):
        chunk = missing[i : i + rows_per_shard]
        target.write(chunk, source.load(chunk))
    return len(missing)


def run(quick: bool) -> Result:
    """Time a full and an incremental ``update_cache`` per branch."""
    n_base = 100 if quick else 500
    n_new = math.ceil(NEW_FRACTION * n_base)
    dataset = benchmark_demo_config(quick)
    new_config = demo_config(n_images=n_new, seed=NEW_SEED)
    new = demo_dataset(new_config)
    new["source_id"] = f"seed{NEW_SEED}_" + new["source_id"].astype(str)  # no clash with base
    # Validated together, as the pipeline validates the grown manifest (a handful of new
    # images alone would fail min_group_size).
    grown = ingest(pd.concat([demo_dataset(dataset).iloc[:n_base], new], ignore_index=True))
    base = grown.iloc[:n_base]
    store = image_store()
    runtime = runtime_config()

    table_rows, per_branch = [], {}
    totals = {"build": 0.0, "full": 0.0, "incremental": 0.0}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RESULTS, prefix=".incremental-") as tmp:
        root = FeatureCacheRoot(tmp)
        for branch in branches():
            start = time.perf_counter()
            extractor = build_extractor(backbone_config(branch))
            build_s = time.perf_counter() - start
            cache = root.open(extractor.identity())

            start = time.perf_counter()
            full = update_cache(base, store, extractor, cache, runtime)
            full_s = time.perf_counter() - start
            start = time.perf_counter()
            incremental = update_cache(grown, store, extractor, cache, runtime)
            incremental_s = time.perf_counter() - start
            if incremental["n_extracted"] != n_new or full["n_extracted"] != n_base:
                raise RuntimeError(
                    f"{branch}: expected {n_base} then {n_new} extracted images, got "
                    f"{full['n_extracted']} then {incremental['n_extracted']}"
                )
            totals["build"] += build_s
            totals["full"] += full_s
            totals["incremental"] += incremental_s
            table_rows.append(
                [
                    f"{branch} {extractor.config.arch} @ {extractor.config.image_size}",
                    fmt(build_s),
                    f"{full_s:.1f} ({full['n_extracted']})",
                    f"{incremental_s:.1f} ({incremental['n_extracted']})",
                    fmt(100 * incremental_s / full_s) + "%",
                    fmt(100 * (build_s + incremental_s) / (build_s + full_s)) + "%",
                ]
            )
            per_branch[branch] = {
                "build_s": round(build_s, 2),
                "full_s": round(full_s, 2),
                "incremental_s": round(incremental_s, 2),
                "full_report_seconds": full["seconds"],
                "incremental_report_seconds": incremental["seconds"],
                "precision": full["precision"],
                "device": full["device"],
            }
            persistent = FeatureCacheRoot(str(CACHE)).open(extractor.identity())
            _copy_missing(cache, persistent, runtime.rows_per_shard)
            del extractor

    ratio = totals["incremental"] / totals["full"]
    ratio_build = (totals["build"] + totals["incremental"]) / (totals["build"] + totals["full"])
    table_rows.append(
        [
            "all branches",
            fmt(totals["build"]),
            fmt(totals["full"]),
            fmt(totals["incremental"]),
            fmt(100 * ratio) + "%",
            fmt(100 * ratio_build) + "%",
        ]
    )
    table = Table(
        f"{n_base} base images + {n_new} new ({NEW_FRACTION:.0%}, seed {NEW_SEED}), "
        f"{dataset.image_size} px; seconds (images extracted)",
        ["branch", "build s", "full s", "incremental s", "incr/full", "incl. build"],
        table_rows,
    )
    notes = [
        "full = update_cache of the base images into an empty cache; incremental = "
        "update_cache of base + new images into that cache (the base images are skipped by "
        "content hash). The extractor is built once before both.",
        f"runtime: feature_extraction.runtime of conf/base (batch {runtime.batch_size}, "
        f"{runtime.num_workers} workers, precision {runtime.precision}, compile "
        f"{runtime.compile}), progress bar off.",
        "the denominator is the full extraction of the base set, not of base + new, so the "
        f"ideal ratio is {NEW_FRACTION:.0%} and fixed costs (worker start, cache listing) show.",
    ]
    return Result(
        name="incremental",
        title=f"incremental run with {NEW_FRACTION:.0%} new images vs a full extraction",
        target=f"at most {TARGET:.0%} of the full time",
        passed=ratio <= TARGET,
        verdict=(
            f"incremental/full = {ratio:.1%} of update_cache time "
            f"({ratio_build:.1%} with the extractor build on both sides)"
        ),
        tables=[table],
        notes=notes,
        metrics={
            "n_base": n_base,
            "n_new": n_new,
            "ratio": round(ratio, 4),
            "ratio_with_build": round(ratio_build, 4),
            "totals_s": {k: round(v, 2) for k, v in totals.items()},
            "branches": per_branch,
        },
    )
