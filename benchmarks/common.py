"""Shared helpers of the benchmarks: the pipeline's parameters, cached demo data, machine info,
timing, and the result tables.

Parameters are read from ``conf/base/parameters_<group>.yml`` and typed by the project's own
config classes, so a benchmark follows the pipeline's defaults when they change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import platform
import resource
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from benchmarks.second_source import SecondSourceConfig, write_second_source_dataset
from deepfake_kedro.demo import DemoConfig, write_demo_dataset
from deepfake_kedro.features import ExtractionConfig
from deepfake_kedro.ingestion import IngestionConfig, validate_manifest
from deepfake_kedro.io import ImageStore
from deepfake_kedro.models import BackboneConfig

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf" / "base"
RESULTS = REPO / "benchmarks" / "results"
DATA = RESULTS / "data"
"""Generated demo datasets, one folder per DemoConfig; one ImageStore root for all of them."""
CACHE = RESULTS / "cache"
"""Persistent feature cache: the incremental benchmark fills it, the quality benchmark reads it."""


# ----------------------------------------------------------------------------- parameters


def pipeline_params(group: str) -> dict[str, Any]:
    """The ``group`` block of ``conf/base/parameters_<group>.yml`` (what ``kedro run`` uses)."""
    path = CONF / f"parameters_{group}.yml"
    with path.open() as file:
        data = yaml.safe_load(file) or {}
    if group not in data:
        raise KeyError(f"{path} has no top-level key {group!r}")
    return data[group]


def branches() -> list[str]:
    """The branches: the enabled entries of ``feature_extraction.backbones``."""
    from deepfake_kedro.project import branches_from

    return branches_from({"feature_extraction": pipeline_params("feature_extraction")})


def backbone_config(branch: str, **overrides: Any) -> BackboneConfig:
    """``feature_extraction.backbones.<branch>``, with ``overrides`` applied."""
    params = pipeline_params("feature_extraction")["backbones"][branch]
    return BackboneConfig.model_validate({**params, **overrides})


def runtime_config(**overrides: Any) -> ExtractionConfig:
    """``feature_extraction.runtime`` with the progress bar off (and ``overrides`` applied)."""
    params = pipeline_params("feature_extraction")["runtime"]
    return ExtractionConfig.model_validate({**params, "progress": False, **overrides})


def demo_config(**overrides: Any) -> DemoConfig:
    """``demo_data`` parameters, with ``overrides`` applied."""
    return DemoConfig.model_validate({**pipeline_params("demo_data"), **overrides})


def ingestion_config() -> IngestionConfig:
    """``data_ingestion`` parameters."""
    return IngestionConfig.model_validate(pipeline_params("data_ingestion"))


def benchmark_demo_config(quick: bool) -> DemoConfig:
    """The default demo dataset (quick: 300 images). Throughput and incremental use its first
    rows, so every benchmark reads the same images and the feature cache is shared."""
    return demo_config(n_images=300) if quick else demo_config()


def benchmark_second_source_config(quick: bool) -> SecondSourceConfig:
    """The second generator's dataset (800 images; quick: 160) at the demo's image size."""
    return SecondSourceConfig(n_images=160 if quick else 800, image_size=demo_config().image_size)


# ---------------------------------------------------------------------------- demo data


def image_store() -> ImageStore:
    """The store over every generated dataset (manifest paths start with the dataset folder)."""
    DATA.mkdir(parents=True, exist_ok=True)
    return ImageStore(str(DATA))


def demo_dataset(config: DemoConfig) -> pd.DataFrame:
    """The manifest of a demo dataset, generated once per config under ``results/data``.

    Returns:
        The generator's manifest with ``image_path`` relative to :data:`DATA` (prefixed with
        the dataset's folder, so datasets of different seeds can share one store).
    """
    name = f"demo-n{config.n_images}-px{config.image_size}-seed{config.seed}"
    return _generated(name, config, lambda out: write_demo_dataset(out, config, progress=False))


def second_source_dataset(config: SecondSourceConfig) -> pd.DataFrame:
    """The manifest of a second-generator dataset (:mod:`benchmarks.second_source`),
    generated once per config under ``results/data``, paths relative to :data:`DATA`."""
    name = f"photos-n{config.n_images}-px{config.image_size}-seed{config.seed}"
    return _generated(name, config, lambda out: write_second_source_dataset(out, config))


def _generated(
    name: str, config: DemoConfig | SecondSourceConfig, write: Callable[[Path], object]
) -> pd.DataFrame:
    """Write a dataset once into ``DATA/<name>-<config hash>`` and read its manifest."""
    text = config.model_dump_json()
    key = hashlib.sha256(text.encode()).hexdigest()[:10]
    folder = DATA / f"{name}-{key}"
    manifest_path = folder / "manifest.csv"
    if not manifest_path.is_file():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = DATA / f".tmp-{uuid.uuid4().hex}"
        start = time.perf_counter()
        try:
            write(tmp)
            (tmp / "config.json").write_text(text)
            if folder.exists():  # a folder without manifest: an interrupted older layout
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.warning(
            "generated %s (%d images) in %.0f s into %s",
            name,
            config.n_images,
            time.perf_counter() - start,
            folder,
        )
    manifest = pd.read_csv(manifest_path)
    manifest["image_path"] = folder.name + "/" + manifest["image_path"].astype(str)
    return manifest


def ingest(manifest: pd.DataFrame) -> pd.DataFrame:
    """``validate_manifest`` with the pipeline's ``data_ingestion`` parameters.

    Raises:
        RuntimeError: if any row was rejected (generated data must pass as it is).
    """
    valid, problems = validate_manifest(manifest, image_store(), ingestion_config())
    if len(problems):
        raise RuntimeError(
            f"validate_manifest rejected {len(problems)} generated rows, e.g. "
            f"{problems.iloc[0].to_dict()}"
        )
    return valid


@functools.lru_cache(maxsize=4)
def _validated(config_json: str) -> pd.DataFrame:
    return ingest(demo_dataset(DemoConfig.model_validate_json(config_json)))


def validated_demo(config: DemoConfig) -> pd.DataFrame:
    """A demo dataset through ``validate_manifest`` (with ``content_hash``); cached per process."""
    return _validated(config.model_dump_json()).copy()


@functools.lru_cache(maxsize=2)
def _validated_second(config_json: str) -> pd.DataFrame:
    return ingest(second_source_dataset(SecondSourceConfig.model_validate_json(config_json)))


def validated_second_source(config: SecondSourceConfig) -> pd.DataFrame:
    """A second-generator dataset through ``validate_manifest``; cached per process."""
    return _validated_second(config.model_dump_json()).copy()


# ------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's ``model name`` from /proc/cpuinfo (the platform's name where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, threads, torch, bf16 support, current load."""
    import torch

    from deepfake_kedro.features.device import cpu_native_bf16

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_bf16": cpu_native_bf16()[1],
        "cuda": torch.cuda.is_available(),
        "load_1min": round(load_average(), 2),
    }


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """System CPU time (from /proc/stat) and this process tree's CPU time at one moment."""

    wall: float
    busy: float
    steal: float
    own: float

    @classmethod
    def take(cls) -> CpuSnapshot:
        busy = steal = 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
            hz = os.sysconf("SC_CLK_TCK")
            user, nice, system, _idle, _iowait, irq, softirq, st = fields[:8]
            busy = (user + nice + system + irq + softirq) / hz
            steal = st / hz
        own = sum(
            getattr(resource.getrusage(who), f)
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            for f in ("ru_utime", "ru_stime")
        )
        return cls(time.monotonic(), busy, steal, own)

    def usage_since(self, start: CpuSnapshot) -> dict[str, float]:
        """Shares of the machine's CPU capacity over the interval, in percent: used by this
        process and its reaped children, by anything else, and stolen by the hypervisor."""
        capacity = (self.wall - start.wall) * (os.cpu_count() or 1)
        if capacity <= 0:
            return {}
        own = self.own - start.own
        other = max(0.0, (self.busy - start.busy) - own)
        return {
            "own_pct": round(100 * own / capacity, 1),
            "other_pct": round(100 * other / capacity, 1),
            "steal_pct": round(100 * (self.steal - start.steal) / capacity, 1),
        }


def wait_for_quiet(threshold: float, poll_s: float = 30.0, max_wait_s: float = 600.0) -> float:
    """Wait until the 1-minute load is below ``threshold`` (at most ``max_wait_s``); return it."""
    deadline = time.monotonic() + max_wait_s
    load = load_average()
    while load >= threshold and time.monotonic() < deadline:
        logger.warning("1-minute load %.2f >= %.2f: waiting %.0f s", load, threshold, poll_s)
        time.sleep(poll_s)
        load = load_average()
    return load


# ---------------------------------------------------------------------------------- logs


class _Once(logging.Filter):
    """Let each distinct message through once (the CPU fallback is logged on every call)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = f"{record.name}:{record.getMessage()}"
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def setup_logging(verbose: bool) -> None:
    """Warnings once each on stderr (everything at INFO with ``verbose``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("  [%(levelname)s %(name)s] %(message)s"))
    if not verbose:
        handler.addFilter(_Once())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)


@contextlib.contextmanager
def captured_warnings(name: str) -> Iterator[list[str]]:
    """Collect the WARNING messages of logger ``name`` (and its children) inside the block."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    target = logging.getLogger(name)
    target.addHandler(handler)
    try:
        yield messages
    finally:
        target.removeHandler(handler)


# ------------------------------------------------------------------------------- results


@dataclasses.dataclass
class Table:
    """A printed table: cells are already formatted strings."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    left_columns: int = 1
    """Columns aligned left (labels); the others are numbers, aligned right."""

    def render(self) -> str:
        cells = [self.headers, *self.rows]
        widths = [max(len(str(row[i])) for row in cells) for i in range(len(self.headers))]

        def line(row: list[str]) -> str:
            parts = [
                str(c).ljust(w) if i < self.left_columns else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            return "  " + "  ".join(parts).rstrip()

        rule = "  " + "  ".join("-" * w for w in widths)
        return "\n".join([f"  {self.title}", line(self.headers), rule, *map(line, self.rows)])


@dataclasses.dataclass
class Result:
    """What a benchmark measured, its target and whether it was met."""

    name: str
    title: str
    target: str
    passed: bool
    verdict: str
    tables: list[Table]
    notes: list[str] = dataclasses.field(default_factory=list)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    def render(self) -> str:
        out = [f"== {self.name}: {self.title}"]
        for table in self.tables:
            out += ["", table.render()]
        out += [""] + [f"  note: {n}" for n in self.notes]
        out += [
            f"  target: {self.target}",
            f"  {'PASS' if self.passed else 'MISS'}: {self.verdict}",
        ]
        return "\n".join(out)

    def to_json(self, machine: dict[str, Any], quick: bool, seconds: float) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "title": self.title,
            "quick": quick,
            "target": self.target,
            "status": "PASS" if self.passed else "MISS",
            "verdict": self.verdict,
            "seconds": round(seconds, 1),
            "machine": machine,
            "metrics": self.metrics,
            "tables": [dataclasses.asdict(t) for t in self.tables],
            "notes": self.notes,
        }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (a half-written result never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with ``digits`` decimals, or ``-`` for None/NaN."""
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"
