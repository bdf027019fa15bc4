"""Peak memory of extraction at two dataset sizes: it must not grow with the dataset.

Each size runs in a fresh process (:mod:`benchmarks.memory_child`), so the peaks do not mix:
the default branches and runtime of conf/base, but at a small image size (networks and
spectral features at 64 px over 64 px demo images) to keep the large run short. The measure is
``ru_maxrss`` of that process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from benchmarks.common import (
    REPO,
    RESULTS,
    Result,
    Table,
    demo_config,
    fmt,
    validated_demo,
)
from benchmarks.memory_child import RESULT_PREFIX

TARGET = 0.10
IMAGE_SIZE = 64
SIZES = (500, 5000)
QUICK_SIZES = (100, 500)


def _measure(manifest_path: str, image_size: int) -> dict:
    with tempfile.TemporaryDirectory(dir=RESULTS, prefix=".memory-cache-") as cache:
        command = [
            sys.executable,
            "-m",
            "benchmarks.memory_child",
            "--manifest",
            manifest_path,
            "--cache",
            cache,
            "--image-size",
            str(image_size),
        ]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"memory child failed (exit {done.returncode}): {' '.join(command)}\n"
            f"{done.stderr[-3000:]}"
        )
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["process_wall_s"] = round(wall, 1)
    return result


def run(quick: bool) -> Result:
    """Run the extraction in a fresh process at the small and the large size."""
    small, large = QUICK_SIZES if quick else SIZES
    # One dataset of the large size; the small run reads its first rows.
    rows = validated_demo(demo_config(n_images=large, image_size=IMAGE_SIZE))
    measured = {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RESULTS, prefix=".memory-") as tmp:
        for n in (small, large):
            path = f"{tmp}/manifest-{n}.parquet"
            rows.iloc[:n][["image_path", "content_hash"]].to_parquet(path)
            measured[n] = _measure(path, IMAGE_SIZE)

    def mib(kib: float | None) -> str:
        return "-" if kib is None else fmt(kib / 1024, 0)

    table_rows = []
    for n, m in measured.items():
        table_rows.append(
            [
                f"{n:,}",
                fmt(m["seconds"]),
                mib(m["rss_before_extraction_kib"]),
                mib(m["hwm_before_extraction_kib"]),
                mib(m["ru_maxrss_kib"]),
                mib(max(0, m["ru_maxrss_kib"] - (m["hwm_before_extraction_kib"] or 0))),
                mib(m["children_ru_maxrss_kib"]),
            ]
        )
    peak_small = measured[small]["ru_maxrss_kib"]
    peak_large = measured[large]["ru_maxrss_kib"]
    ratio = peak_large / peak_small
    table = Table(
        f"update_cache of every default branch at {IMAGE_SIZE} px, fresh process per size (MiB)",
        [
            "images",
            "extract s",
            "RSS before",
            "peak before",
            "peak (ru_maxrss)",
            "peak - peak before",
            "workers peak",
        ],
        table_rows,
    )
    notes = [
        f"small image size to keep it fast: resnet50 and ViT-B-32 at image_size {IMAGE_SIZE}, "
        f"spectral at {IMAGE_SIZE}, over {IMAGE_SIZE} px demo images; runtime from conf/base "
        "(progress bar off). The small run reads the first rows of the large dataset.",
        "'before' = after imports, reading the manifest and building all extractors; "
        "'peak - peak before' is what extraction added above that. 'workers peak' is "
        "RUSAGE_CHILDREN (DataLoader workers; forked, so they count the parent's pages they map).",
        "rows_per_shard (2048) bounds the write buffer, so a run below that size buffers all "
        "its rows: part of the difference is by design.",
    ]
    return Result(
        name="memory",
        title=f"peak memory of extraction at {small:,} and {large:,} images",
        target=f"peaks within {TARGET:.0%} of each other",
        passed=abs(ratio - 1) <= TARGET,
        verdict=(
            f"peak RSS {peak_large / 1024:.0f} MiB at {large:,} vs {peak_small / 1024:.0f} MiB "
            f"at {small:,}: ratio {ratio:.3f}"
        ),
        tables=[table],
        notes=notes,
        metrics={
            "image_size": IMAGE_SIZE,
            "ratio_large_small": round(ratio, 4),
            "runs": {str(n): m for n, m in measured.items()},
        },
    )
