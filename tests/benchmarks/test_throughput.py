"""The throughput benchmark's matmul ceiling: sized so that an emulated dtype costs seconds."""

from __future__ import annotations

import pytest
import torch

from benchmarks import throughput


def test_matmul_ceiling_at_full_size_when_it_fits_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(throughput, "MATMUL_MAX_S", 3600.0)  # any machine, however loaded
    monkeypatch.setattr(throughput, "MATMUL_WARMUP", 0)
    monkeypatch.setattr(throughput, "MATMUL_REPS", 1)
    gflops, n = throughput._matmul_gflops(torch.float32, torch.device("cpu"))
    assert n == throughput.MATMUL_N and gflops > 0


def test_matmul_ceiling_shrinks_for_a_dtype_too_slow_for_the_full_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A budget no 2048 matmul meets: the size halves down to the largest that fits, never
    # below the probe.
    monkeypatch.setattr(throughput, "MATMUL_MAX_S", 1e-9)
    monkeypatch.setattr(throughput, "MATMUL_REPS", 1)
    gflops, n = throughput._matmul_gflops(torch.float32, torch.device("cpu"))
    assert n == throughput.MATMUL_PROBE_N and gflops > 0
