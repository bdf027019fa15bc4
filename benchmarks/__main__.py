"""``python -m benchmarks [throughput|incremental|memory|quality|pipeline ...] [--quick]``.

Runs the named benchmarks (all by default, in the order below: incremental fills the feature
cache that quality reads), prints a table per benchmark with its target and PASS/MISS, and
writes ``benchmarks/results/<name>.json`` (``<name>-quick.json`` with ``--quick``). A MISS is a
result, not an error: the exit code is 1 only when a benchmark fails to run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Sequence

# Before kedro or mlflow are imported anywhere: no telemetry.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

BENCHMARKS = ("throughput", "incremental", "memory", "quality", "pipeline")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Performance and quality benchmarks; ratios against baselines measured "
        "in the same run.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run ({', '.join(BENCHMARKS)}); all when none is given",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run (< 2 min)")
    parser.add_argument(
        "--wait-load",
        type=float,
        default=None,
        metavar="LOAD",
        help="before each benchmark, wait (up to 10 min) until the 1-minute load is below LOAD",
    )
    parser.add_argument("--verbose", action="store_true", help="the pipeline's INFO logs too")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    names = [n for n in BENCHMARKS if n in args.names] if args.names else list(BENCHMARKS)

    import torch

    from benchmarks import common

    common.setup_logging(args.verbose)
    torch.set_num_threads(os.cpu_count() or 1)
    machine = common.machine_info()
    _out(
        f"machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, torch "
        f"{machine['torch']} with {machine['torch_threads']} threads, {machine['cpu_bf16']}, "
        f"CUDA {machine['cuda']}"
    )
    _out(
        f"load (1 min) at start: {machine['load_1min']}; mode: {'quick' if args.quick else 'full'}"
    )

    summary, failed = [], False
    for name in names:
        if args.wait_load is not None:
            common.wait_for_quiet(args.wait_load)
        load_before = round(common.load_average(), 2)
        _out()
        cpu_start = common.CpuSnapshot.take()
        start = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception:  # one broken benchmark must not hide the others' results
            failed = True
            _out(f"== {name}: ERROR\n{traceback.format_exc()}")
            summary.append([name, "ERROR", "-", f"{time.perf_counter() - start:.0f}"])
            continue
        seconds = time.perf_counter() - start
        cpu = common.CpuSnapshot.take().usage_since(cpu_start)
        info = {
            **machine,
            "load_1min": load_before,
            "load_1min_after": round(common.load_average(), 2),
            "cpu_usage": cpu,
        }
        _out(result.render())
        _out(
            f"  ({seconds:.0f} s; load (1 min) {load_before} before, {info['load_1min_after']} "
            f"after; CPU capacity used by this run {cpu.get('own_pct', '-')}%, by other "
            f"processes {cpu.get('other_pct', '-')}%, stolen {cpu.get('steal_pct', '-')}%)"
        )
        suffix = "-quick" if args.quick else ""
        common.write_json(
            common.RESULTS / f"{name}{suffix}.json", result.to_json(info, args.quick, seconds)
        )
        summary.append(
            [name, "PASS" if result.passed else "MISS", result.verdict, f"{seconds:.0f}"]
        )

    _out()
    _out(
        common.Table(
            "summary", ["benchmark", "status", "measured", "s"], summary, left_columns=3
        ).render()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
