"""Extraction throughput of the pipeline's extractor against a naive fp32 loop, and its GFLOP/s
against this machine's matrix-multiply ceiling measured in the same run (the faster of a bf16
and an fp32 matmul: bf16 on a CPU with AVX512-BF16 or AMX, or a GPU; fp32 where bf16 is
emulated).

Naive baseline (what a first script would do): one process, batches of 32, PIL open ->
``extractor.preprocess`` -> ``torch.stack`` -> ``extractor(batch)`` in fp32, default memory
format, ``torch.inference_mode()``, no autocast, no DataLoader workers, the network as
torchvision and open_clip build it (the pipeline's frozen ResNet has its BatchNorms folded
into the convolutions).

Pipeline path: ``iter_features`` with ``feature_extraction.runtime`` from conf/base (precision
auto, channels_last, DataLoader workers), once eager (the default, ``compile: false``) and once
with ``compile: true``. Every path gets a freshly built extractor (same seed, same weights).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import statistics
import tempfile
import time
from collections.abc import Iterator

import pandas as pd
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import (
    Result,
    Table,
    benchmark_demo_config,
    captured_warnings,
    fmt,
    image_store,
    runtime_config,
    validated_demo,
)
from benchmarks.common import backbone_config as pipeline_backbone
from deepfake_kedro.features import iter_features, resolve_device, resolve_precision
from deepfake_kedro.features.device import precision_name
from deepfake_kedro.models import BackboneConfig, build_extractor

TARGET_RATIO = 3.0
TARGET_OF_BOUND = 0.80
"""PASS: at least TARGET_RATIO x the naive loop, or TARGET_OF_BOUND of the bound (what both
networks would take at the matmul ceiling), whichever is lower on this machine."""
NAIVE_BATCH = 32
WARMUP_BATCHES = 2
"""Batches left out of the steady-state rate (the first one carries torch.compile)."""
MATMUL_N = 2048
MATMUL_WARMUP, MATMUL_REPS = 3, 10
MATMUL_PROBE_N, MATMUL_MAX_S = 256, 0.5
NETWORKS = ("resnet", "clip")


@dataclasses.dataclass
class Timing:
    """Per-batch completion times of one pass over the images."""

    start: float
    stamps: list[float]
    sizes: list[int]

    @property
    def n(self) -> int:
        return sum(self.sizes)

    @property
    def seconds(self) -> float:
        return self.stamps[-1] - self.start

    @property
    def rate(self) -> float:
        """End to end images per second (first batch, compilation and worker start included)."""
        return self.n / self.seconds

    @property
    def batch_seconds(self) -> list[float]:
        """Duration of each batch (the first from the start of the pass)."""
        ends = [self.start, *self.stamps]
        return [b - a for a, b in zip(ends, ends[1:], strict=False)]

    @property
    def warmup(self) -> int:
        """Batches left out of the steady state: 2, or 1 when there are only 2 batches."""
        return min(WARMUP_BATCHES, len(self.stamps) - 1)

    @property
    def steady_rate(self) -> float:
        """Median images per second of the batches after the warm-up batches (robust to a
        stall caused by anything else on the machine)."""
        k = self.warmup
        if k < 1:
            return self.rate
        rates = [n / s for n, s in zip(self.sizes[k:], self.batch_seconds[k:], strict=True)]
        return statistics.median(rates)


def _naive(extractor: torch.nn.Module, paths: list[str], device: torch.device) -> Timing:
    extractor.to(device)
    preprocess = extractor.preprocess
    stamps, sizes = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(paths), NAIVE_BATCH):
            images = []
            for path in paths[i : i + NAIVE_BATCH]:
                with Image.open(path) as image:
                    images.append(preprocess(image))
            features = extractor(torch.stack(images).to(device))
            features.cpu().numpy()
            stamps.append(time.perf_counter())
            sizes.append(len(images))
    return Timing(start, stamps, sizes)


def _pipeline(
    extractor: torch.nn.Module, rows: pd.DataFrame, compile_model: bool, cold: bool = True
) -> Timing:
    config = runtime_config(compile=compile_model, compile_min_images=0)
    stamps, sizes = [], []
    with _cold_inductor_cache() if compile_model and cold else contextlib.nullcontext():
        start = time.perf_counter()
        for hashes, _features in iter_features(rows, image_store(), extractor, config):
            stamps.append(time.perf_counter())
            sizes.append(len(hashes))
    return Timing(start, stamps, sizes)


@contextlib.contextmanager
def _cold_inductor_cache() -> Iterator[None]:
    """An empty inductor cache: the compile time of a first run, not of a rerun on this machine."""
    with tempfile.TemporaryDirectory(prefix="bench-inductor-") as tmp:
        try:  # also clears inductor's in-memory caches; private, so fall back to the variable
            from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir
        except ImportError:
            temporary_cache_dir = None
        if temporary_cache_dir is not None:
            with temporary_cache_dir(tmp):
                yield
            return
        previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tmp
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous


def _flops_per_image(config: BackboneConfig) -> float:
    """FLOPs of one fp32 forward (FlopCounterMode counts a multiply-add as 2)."""
    extractor = build_extractor(config)
    images = torch.randint(0, 256, (2, 3, config.image_size, config.image_size), dtype=torch.uint8)
    # nn.MultiheadAttention's inference fast path is one fused op the counter does not see
    # (it would miss the attention projections of CLIP); the math is the same without it.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            extractor(images)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops() / 2


def _matmul_gflops(dtype: torch.dtype, device: torch.device) -> tuple[float, int]:
    """Throughput of an N x N matmul (best of ``MATMUL_REPS`` after warm-up), in GFLOP/s, and N.

    N is ``MATMUL_N`` unless one such matmul would take over ``MATMUL_MAX_S`` (a dtype the
    hardware emulates: bf16 on a CPU without AVX512-BF16 or AMX runs at well under 1 GFLOP/s,
    where 13 matmuls of 2048 would take minutes); then the largest power of two that fits,
    from a 256 x 256 probe.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def matrices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, n).to(device, dtype), torch.randn(n, n).to(device, dtype)

    n = MATMUL_N
    a, b = matrices(MATMUL_PROBE_N)
    torch.matmul(a, b)
    sync()
    start = time.perf_counter()
    torch.matmul(a, b)
    sync()
    probe_s = time.perf_counter() - start
    while n > MATMUL_PROBE_N and probe_s * (n / MATMUL_PROBE_N) ** 3 > MATMUL_MAX_S:
        n //= 2
    a, b = matrices(n)
    for _ in range(MATMUL_WARMUP):
        torch.matmul(a, b)
    sync()
    best = math.inf
    for _ in range(MATMUL_REPS):
        start = time.perf_counter()
        torch.matmul(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9, n


def run(quick: bool) -> Result:
    """Measure naive, pipeline-eager and pipeline-compiled throughput of ResNet and CLIP."""
    n_images = 64 if quick else 256
    rows = validated_demo(benchmark_demo_config(quick)).iloc[:n_images].reset_index(drop=True)
    store = image_store()
    paths = [store.uri(p) for p in rows["image_path"]]
    runtime = runtime_config()
    device = resolve_device(runtime.device)
    dtype = resolve_precision(runtime.precision, device)
    notes: list[str] = []

    ceiling_bf16, n_bf16 = _matmul_gflops(torch.bfloat16, device)
    ceiling_fp32, n_fp32 = _matmul_gflops(torch.float32, device)
    ceiling = max(ceiling_bf16, ceiling_fp32)
    ceiling_name = "bf16" if ceiling_bf16 >= ceiling_fp32 else "fp32"

    # Throughput does not depend on weight values: random init, no download.
    configs = {b: pipeline_backbone(b, weights="none") for b in NETWORKS}
    flops = {b: _flops_per_image(c) for b, c in configs.items()}
    timings: dict[str, dict[str, Timing]] = {b: {} for b in NETWORKS}
    compile_fell_back: dict[str, bool] = {}
    for branch, config in configs.items():
        # The naive loop runs the network as torchvision builds it: a frozen ResNet folds its
        # BatchNorms into the convolutions, a finetune one keeps them (same weights).
        naive = build_extractor(config.model_copy(update={"train_mode": "finetune"}))
        timings[branch]["naive"] = _naive(naive, paths, device)
        timings[branch]["eager"] = _pipeline(build_extractor(config), rows, compile_model=False)
        with captured_warnings("deepfake_kedro.features") as warnings:
            timings[branch]["compiled"] = _pipeline(
                build_extractor(config), rows, compile_model=True, cold=not quick
            )
        compile_fell_back[branch] = any("torch.compile" in w for w in warnings)
        if compile_fell_back[branch]:
            notes.append(f"{branch}: torch.compile fell back to eager: {warnings}")
    spectral = _pipeline(build_extractor(pipeline_backbone("spectral")), rows, compile_model=False)

    def both(path: str, steady: bool = False) -> float:
        """Seconds for both networks over the images."""
        return sum(
            (t.n / t.steady_rate) if steady else t.seconds
            for t in (timings[b][path] for b in NETWORKS)
        )

    ratio_eager = both("naive") / both("eager")
    ratio_compiled_e2e = both("naive") / both("compiled")
    ratio_compiled_steady = both("naive", steady=True) / both("compiled", steady=True)
    label = {
        "naive": "naive fp32 loop",
        "eager": f"pipeline {precision_name(dtype)} eager (default)",
        "compiled": f"pipeline {precision_name(dtype)} compiled",
    }
    table_rows, metrics_rows = [], {}
    for branch in NETWORKS:
        arch = configs[branch].arch
        naive = timings[branch]["naive"]
        for path in ("naive", "eager", "compiled"):
            t = timings[branch][path]
            gflops = flops[branch] * t.steady_rate / 1e9
            table_rows.append(
                [
                    f"{branch} {arch}",
                    label[path],
                    fmt(t.seconds),
                    fmt(t.batch_seconds[0]),
                    fmt(t.rate, 2),
                    fmt(t.steady_rate, 2),
                    fmt(t.rate / naive.rate, 2) + "x",
                    fmt(gflops, 0),
                    fmt(100 * gflops / ceiling, 0) + "%",
                ]
            )
            metrics_rows[f"{branch}.{path}"] = {
                "seconds": round(t.seconds, 2),
                "img_per_s": round(t.rate, 3),
                "steady_img_per_s": round(t.steady_rate, 3),
                "speedup_vs_naive": round(t.rate / naive.rate, 3),
                "batch_s": [round(x, 3) for x in t.batch_seconds],
                "first_batch_minus_median_s": round(
                    t.batch_seconds[0] - statistics.median(t.batch_seconds[1:] or [0.0]), 2
                ),
                "gflop_per_s_steady": round(gflops, 1),
                "fraction_of_matmul_ceiling": round(gflops / ceiling, 3),
            }
    table_rows.append(
        [
            "spectral v1",
            label["eager"],
            fmt(spectral.seconds),
            fmt(spectral.batch_seconds[0]),
            fmt(spectral.rate, 2),
            fmt(spectral.steady_rate, 2),
            "-",
            "-",
            "-",
        ]
    )
    metrics_rows["spectral.eager"] = {
        "seconds": round(spectral.seconds, 2),
        "img_per_s": round(spectral.rate, 3),
        "steady_img_per_s": round(spectral.steady_rate, 3),
        "batch_s": [round(x, 3) for x in spectral.batch_seconds],
    }
    # The most a path at the matmul ceiling could gain over the naive loop's measured GFLOP/s.
    bound = both("naive", steady=True) / sum(
        n_images * flops[b] / (ceiling * 1e9) for b in NETWORKS
    )
    combined = Table(
        "ResNet + CLIP together (seconds for both networks over the same images)",
        ["path", "seconds", "ratio vs naive"],
        [
            ["naive fp32 loop", fmt(both("naive")), "1.00x"],
            [label["eager"], fmt(both("eager")), fmt(ratio_eager, 2) + "x"],
            [
                label["compiled"] + ", end to end",
                fmt(both("compiled")),
                fmt(ratio_compiled_e2e, 2) + "x",
            ],
            [
                label["compiled"] + ", steady state",
                fmt(both("compiled", steady=True)),
                fmt(ratio_compiled_steady, 2) + "x",
            ],
            [f"bound: both networks at the {ceiling_name} matmul rate", "-", fmt(bound, 2) + "x"],
        ],
    )
    flop_table = Table(
        "FLOPs per image (FlopCounterMode, fp32 forward) and the matmul ceiling of this machine",
        ["what", "value"],
        [
            *[
                [
                    f"{b} {configs[b].arch} @ {configs[b].image_size} px",
                    f"{flops[b] / 1e9:.2f} GFLOP",
                ]
                for b in NETWORKS
            ],
            [
                f"bf16 matmul {n_bf16}x{n_bf16}"
                + (" (ceiling)" if ceiling_name == "bf16" else ""),
                f"{ceiling_bf16:.1f} GFLOP/s",
            ],
            [
                f"fp32 matmul {n_fp32}x{n_fp32}"
                + (" (ceiling)" if ceiling_name == "fp32" else ""),
                f"{ceiling_fp32:.0f} GFLOP/s",
            ],
        ],
    )
    per_backbone = Table(
        f"{n_images} demo images ({rows['width'].iloc[0]} px PNG), batch {runtime.batch_size}, "
        f"{runtime.num_workers} DataLoader workers on the pipeline path",
        [
            "backbone",
            "path",
            "seconds",
            "1st batch s",
            "img/s",
            "steady img/s",
            "vs naive",
            "GFLOP/s",
            f"of {ceiling_name} mm",
        ],
        table_rows,
    )
    notes += [
        "img/s is end to end: first batch, DataLoader start and (compiled) compilation included "
        + (
            "(quick: with the machine's inductor cache, warm after a first run); "
            if quick
            else "(compiled from an empty inductor cache, as on a fresh machine; '1st batch s' "
            "holds it); "
        )
        + f"steady img/s is the median rate of the batches after the first {WARMUP_BATCHES} "
        "(1 when there are only 2). GFLOP/s use the steady rate.",
        "the target is judged on the pipeline's default configuration (compile: false); the "
        "compiled rows show what compile: true adds.",
        f"pipeline precision: {precision_name(dtype)} (precision {runtime.precision} on "
        f"{device}), channels_last {runtime.channels_last}; the stem convolution runs in "
        "fp32 by design (Float32Conv2d).",
        f"the bound row is what both networks would take at the {ceiling_name} matmul rate "
        "(steady state), the faster of bf16 and fp32 on this machine: no path can beat it by "
        "much, whatever the target says.",
    ]
    needed = min(TARGET_RATIO, TARGET_OF_BOUND * bound)
    passed = ratio_eager >= needed
    return Result(
        name="throughput",
        title="extraction throughput vs a naive fp32 loop, GFLOP/s vs the matmul ceiling",
        target=f"ResNet50 and CLIP together at least {TARGET_RATIO:.1f}x the naive loop or "
        f"{TARGET_OF_BOUND:.0%} of the bound ({bound:.2f}x here), whichever is lower: "
        f"{needed:.2f}x",
        passed=passed,
        verdict=(
            f"{ratio_eager:.2f}x with the default config, {ratio_eager / bound:.0%} of the bound "
            f"(compiled: {ratio_compiled_steady:.2f}x steady, {ratio_compiled_e2e:.2f}x end to "
            f"end; bound at the {ceiling_name} matmul rate {bound:.2f}x)"
        ),
        tables=[per_backbone, combined, flop_table],
        notes=notes,
        metrics={
            "n_images": n_images,
            "ratio_eager_vs_naive": round(ratio_eager, 3),
            "ratio_compiled_end_to_end_vs_naive": round(ratio_compiled_e2e, 3),
            "ratio_compiled_steady_vs_naive": round(ratio_compiled_steady, 3),
            "bound_ratio_at_matmul_ceiling": round(bound, 3),
            "fraction_of_bound": round(ratio_eager / bound, 3),
            "matmul_ceiling": ceiling_name,
            "gflop_per_image": {b: round(flops[b] / 1e9, 3) for b in NETWORKS},
            "bf16_matmul_gflop_per_s": round(ceiling_bf16, 1),
            "fp32_matmul_gflop_per_s": round(ceiling_fp32, 1),
            "precision": precision_name(dtype),
            "compile_fell_back": compile_fell_back,
            "paths": metrics_rows,
        },
    )
