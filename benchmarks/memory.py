"""Peak memory of extraction at two dataset sizes: it must not grow with the dataset.

Each size runs in a fresh process (:mod:`benchmarks.memory_child`), so the peaks do not mix:
the default branches and runtime of conf/base, but at a small image size (networks and
spectral features at 64 px over 64 px demo images) to keep the large run short. The measure is
the peak RSS of that process, ``VmHWM`` (``ru_maxrss`` would include the benchmark process's
own size, see :mod:`benchmarks.memory_child`).
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
                mib(m["peak_rss_kib"]),
                mib(m["extraction_peak_rss_kib"]),
                mib(
                    None
                    if m["extraction_peak_rss_kib"] is None
                    else m["extraction_peak_rss_kib"] - m["rss_before_extraction_kib"]
                ),
                mib(m["children_ru_maxrss_kib"]),
            ]
        )
    ratios = {"process": measured[large]["peak_rss_kib"] / measured[small]["peak_rss_kib"]}
    if all(m["extraction_peak_rss_kib"] for m in measured.values()):
        ratios["extraction"] = (
            measured[large]["extraction_peak_rss_kib"] / measured[small]["extraction_peak_rss_kib"]
        )
    table = Table(
        f"update_cache of every default branch at {IMAGE_SIZE} px, fresh process per size (MiB)",
        [
            "images",
            "extract s",
            "RSS before",
            "process peak",
            "extraction peak",
            "extraction growth",
            "workers peak",
        ],
        table_rows,
    )
    notes = [
        f"small image size to keep it fast: resnet50 and ViT-B-32 at image_size {IMAGE_SIZE}, "
        f"spectral at {IMAGE_SIZE}, over {IMAGE_SIZE} px demo images; runtime from conf/base "
        "(progress bar off). The small run reads the first rows of the large dataset.",
        "'RSS before' = after imports, reading the manifest and building all extractors; "
        "'process peak' = the child's VmHWM over its whole life (building CLIP with its text "
        "tower may set it before extraction starts); 'extraction peak' = VmHWM reset through "
        "/proc/self/clear_refs after the build, so it sees extraction only; 'extraction "
        "growth' = extraction peak - RSS before. 'workers peak' is RUSAGE_CHILDREN (DataLoader "
        "workers; forked, so they count the parent's pages they map).",
        "PASS needs both the process peak and the extraction peak within the target. The "
        "child's ru_maxrss is not used (it is in the JSON): Linux carries the peak RSS of the "
        "image that exec replaces into it, so a child started from this benchmark process "
        "reports at least this process's own size at that moment, the same at both sizes.",
        "rows_per_shard (2048) bounds the write buffer, so a run below that size buffers all "
        "its rows: part of the difference is by design.",
    ]
    passed = all(abs(r - 1) <= TARGET for r in ratios.values())
    shown = ", ".join(f"{name} peak {r:.3f}" for name, r in ratios.items())
    return Result(
        name="memory",
        title=f"peak memory of extraction at {small:,} and {large:,} images",
        target=f"peaks within {TARGET:.0%} of each other",
        passed=passed,
        verdict=(
            f"large/small: {shown} (process peak {measured[large]['peak_rss_kib'] / 1024:.0f} "
            f"MiB at {large:,}, {measured[small]['peak_rss_kib'] / 1024:.0f} MiB at {small:,})"
        ),
        tables=[table],
        notes=notes,
        metrics={
            "image_size": IMAGE_SIZE,
            "ratio_large_small": {k: round(v, 4) for k, v in ratios.items()},
            "runs": {str(n): m for n, m in measured.items()},
        },
    )
