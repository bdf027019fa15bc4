"""One extraction in a fresh process, for the memory benchmark: prints its peak RSS as JSON.

``python -m benchmarks.memory_child --manifest M.parquet --cache DIR --image-size 64``
builds every default branch (``feature_extraction`` in conf/base) at ``--image-size``, runs
``update_cache`` for each over the manifest into an empty cache, and prints one JSON line: the
peak resident size of this process (``VmHWM``), the peak during extraction alone (``VmHWM``
reset through ``/proc/self/clear_refs`` after the extractors are built), ``ru_maxrss`` of the
process and of its DataLoader workers, and the resident size before the first ``update_cache``.

Why ``VmHWM`` and not ``ru_maxrss``: Linux carries the peak RSS of the memory image that
``exec`` replaces into ``ru_maxrss`` (``exec_mmap`` folds the old mm's high-water mark into
``signal->maxrss``). A child started from the benchmark process (fork or vfork + exec) thus
reports at least the parent's resident size at that moment, models and all, whatever it did
itself. ``VmHWM`` belongs to the child's own address space, which exec creates empty.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

RESULT_PREFIX = "MEMORY_RESULT "


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (VmRSS, VmHWM), None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so it then measures extraction alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_child")
    parser.add_argument("--manifest", required=True, help="parquet with image_path, content_hash")
    parser.add_argument("--cache", required=True, help="empty folder for the feature cache")
    parser.add_argument("--image-size", type=int, required=True)
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from benchmarks.common import backbone_config, branches, image_store, runtime_config
    from deepfake_kedro.features import FeatureCacheRoot, update_cache
    from deepfake_kedro.models import build_extractor

    torch.set_num_threads(os.cpu_count() or 1)
    manifest = pd.read_parquet(args.manifest)
    store = image_store()
    runtime = runtime_config()
    root = FeatureCacheRoot(args.cache)
    extractors = [
        build_extractor(backbone_config(b, image_size=args.image_size)) for b in branches()
    ]
    rss_before = _status_kib("VmRSS")
    hwm_before = _status_kib("VmHWM")
    reset = _reset_peak()
    start = time.perf_counter()
    reports = []
    for extractor in extractors:
        report = update_cache(manifest, store, extractor, root.open(extractor.identity()), runtime)
        reports.append(
            {k: report[k] for k in ("kind", "n_extracted", "seconds", "peak_buffered_rows")}
        )
    seconds = time.perf_counter() - start
    hwm = _status_kib("VmHWM")
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if hwm is None or hwm_before is None:
        peak, source = ru_maxrss, "ru_maxrss (no /proc: see the docstring)"
    else:
        # After a reset, VmHWM covers extraction only; the process peak is the larger of both.
        peak, source = (max(hwm_before, hwm) if reset else hwm), "VmHWM"
    result = {
        "n_images": len(manifest),
        "image_size": args.image_size,
        "seconds": round(seconds, 2),
        "peak_rss_kib": peak,
        "peak_source": source,
        "extraction_peak_rss_kib": hwm if reset else None,
        "ru_maxrss_kib": ru_maxrss,
        "children_ru_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "rss_before_extraction_kib": rss_before,
        "hwm_before_extraction_kib": hwm_before,
        "reports": reports,
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
