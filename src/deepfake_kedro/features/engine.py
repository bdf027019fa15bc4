"""Stream images through a backbone in batches and keep the features in a :class:`FeatureCache`.

The extractor follows the ``FeatureExtractor`` interface of ``deepfake_kedro.models``:
``preprocess(PIL image) -> uint8 [3, S, S]`` (runs in DataLoader workers), ``forward(uint8
[B, 3, S, S]) -> float32 [B, feature_dim]``, ``identity() -> dict``, ``feature_dim`` and
``config.kind``. Keeping preprocessing inside the extractor is what makes the features used in
training the same as those the registered model computes at inference.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from deepfake_kedro.cache_use import cache_use
from deepfake_kedro.features.cache import CacheIdentityError, FeatureCache, canonical_json
from deepfake_kedro.features.config import ExtractionConfig
from deepfake_kedro.features.device import precision_name, resolve_device, resolve_precision
from deepfake_kedro.io.image_store import ImageStore
from deepfake_kedro.logging_setup import show_progress_bar

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_path", "content_hash")


class ImageReadError(RuntimeError):
    """An image of the manifest cannot be read or decoded."""


class _ImageDataset(Dataset):
    """Manifest rows -> (uint8 image tensor, content hash); runs in DataLoader workers.

    With ``views`` (a ``view`` column), a row's image comes from ``store.read_view(path,
    view)``, e.g. a perturbed copy (:class:`~deepfake_kedro.evaluation.perturbations.
    PerturbationViews`); its content hash is then the view's cache key.
    """

    def __init__(
        self,
        paths: list[str],
        hashes: list[str],
        store: ImageStore,
        preprocess: Callable[[Image.Image], torch.Tensor],
        views: list[str] | None = None,
    ) -> None:
        self.paths = paths
        self.hashes = hashes
        self.store = store
        self.preprocess = preprocess
        self.views = views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        path = self.paths[index]
        view = self.views[index] if self.views is not None else None
        try:
            if view is None:
                data = self.store.read_bytes(path)
                with Image.open(io.BytesIO(data)) as opened:
                    image = opened.convert("RGB")
            else:
                image = self.store.read_view(path, view)
        except Exception as exc:  # any read or decode failure: name the file
            raise ImageReadError(
                f"cannot read image {path!r} under {self.store.root_uri!r} "
                f"({type(exc).__name__}: {exc}). data_ingestion checks that every image "
                "decodes, so the file changed or vanished after it ran: restore the file or "
                "re-run data_ingestion (kedro run --pipelines data_ingestion)"
            ) from exc
        try:
            tensor = self.preprocess(image)
        except Exception as exc:
            raise RuntimeError(
                f"the extractor's preprocess failed on image {path!r} ({type(exc).__name__}: {exc})"
            ) from exc
        return tensor, self.hashes[index]


_COMPILED: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
"""Compiled extractors of this process, by identity, device, precision and memory format: a
backbone is compiled once per process, whatever number of nodes run it."""


class _Runner:
    """Calls the compiled model when asked to, and the eager one if compiling fails.

    Args:
        model: The extractor, on its device.
        key: Its identity, device, precision and memory format (``None``: do not compile);
            a model compiled earlier in this process under the same key is reused.
    """

    def __init__(self, model: torch.nn.Module, key: str | None) -> None:
        self.model = model
        self.key = key
        self.reused = False
        self.compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        if key is None:
            return
        if key in _COMPILED:
            self.compiled, self.reused = _COMPILED[key], True
            return
        try:
            self.compiled = _COMPILED[key] = torch.compile(model)
        except Exception as exc:  # compile is an optimisation, never a reason to fail
            logger.warning(
                "torch.compile is unavailable (%s: %s); running the extractor eagerly",
                type(exc).__name__,
                exc,
            )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(images)
            except Exception as exc:  # compilation happens lazily, on the first calls
                logger.warning(
                    "torch.compile failed (%s: %s); falling back to the eager extractor",
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
                self.compiled = None
                _COMPILED.pop(self.key or "", None)
        return self.model(images)


def _compile_key(
    extractor: torch.nn.Module, device: torch.device, dtype: torch.dtype | None, config: Any
) -> str:
    identity = extractor.identity() if hasattr(extractor, "identity") else id(extractor)
    return canonical_json(
        {
            "identity": identity,
            "device": str(device),
            "dtype": precision_name(dtype),
            "channels_last": bool(config.channels_last),
        }
    )


def _check_rows(rows: pd.DataFrame, what: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(
            f"{what} lacks column(s) {', '.join(missing)}; feature extraction needs image_path "
            "and content_hash (added by data_ingestion's validate_manifest). Columns present: "
            f"{', '.join(map(str, rows.columns))}"
        )
    if rows["content_hash"].isna().any():
        raise ValueError(
            f"{what} has {int(rows['content_hash'].isna().sum())} rows without content_hash"
        )


def _kind(extractor: torch.nn.Module) -> str:
    return str(getattr(getattr(extractor, "config", None), "kind", type(extractor).__name__))


def iter_features(
    rows: pd.DataFrame,
    store: ImageStore,
    extractor: torch.nn.Module,
    config: ExtractionConfig,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Extract features of manifest rows, batch by batch, in row order.

    Args:
        rows: Table with ``image_path`` (relative to the store) and ``content_hash``.
        store: Where the images are read from.
        extractor: A ``FeatureExtractor``; it is moved to the device and put in eval mode.
        config: Batch size, workers, device, precision, channels_last, compile, progress.

    Yields:
        ``(content_hashes, features)`` per batch, features float32 ``[B, feature_dim]``.

    Raises:
        ImageReadError: if an image cannot be read or decoded (names its image_path).
    """
    _check_rows(rows, "rows")
    device = resolve_device(config.device)
    dtype = resolve_precision(config.precision, device)
    yield from _extract(rows, store, extractor, config, device, dtype, {})


def _extract(
    rows: pd.DataFrame,
    store: ImageStore,
    extractor: torch.nn.Module,
    config: ExtractionConfig,
    device: torch.device,
    dtype: torch.dtype | None,
    stats: dict[str, Any],
) -> Iterator[tuple[list[str], np.ndarray]]:
    kind = _kind(extractor)
    total = len(rows)
    stats.update(n=0, seconds=0.0, compiled=False)
    if total == 0:
        logger.info("%s: no images to extract", kind)
        return
    dataset = _ImageDataset(
        rows["image_path"].astype(str).tolist(),
        rows["content_hash"].astype(str).tolist(),
        store,
        extractor.preprocess,
        rows["view"].astype(str).tolist() if "view" in rows.columns else None,
    )
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    start = time.perf_counter()
    # Start the workers before the model moves to the device: they only need preprocess and
    # must not inherit (or, with spawn, pickle) CUDA state.
    batches = iter(loader)
    extractor.eval()
    extractor.to(device)
    if config.channels_last:
        extractor.to(memory_format=torch.channels_last)
    compiling = config.compiles(kind, total)
    runner = _Runner(extractor, _compile_key(extractor, device, dtype, config) if compiling else None)
    if runner.reused:
        logger.info("%s: reusing the extractor compiled earlier in this process", kind)
    elif runner.compiled is not None:
        logger.info("%s: torch.compile: the first batch includes the compilation", kind)
    autocast = (
        torch.autocast(device_type=device.type, dtype=dtype)
        if dtype is not None
        else contextlib.nullcontext()
    )
    precision = precision_name(dtype)
    # One progress channel: the bar where someone watches, else a log line per tenth.
    bar_shown = show_progress_bar(config.progress)
    step = max(1, math.ceil(total / 10))
    next_log = step
    done = 0
    bar = tqdm(total=total, unit="img", desc=f"{kind} features", disable=not bar_shown)
    try:
        for images, hashes in batches:
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise TypeError(
                    f"{type(extractor).__name__}.preprocess must return uint8 [3, S, S] "
                    f"tensors; got a batch of {images.dtype} with shape {tuple(images.shape)}"
                )
            images = images.to(device, non_blocking=True)
            n = len(images)
            if runner.compiled is not None and n < config.batch_size:
                # One shape for the compiled model: pad the last batch, never recompile.
                pad = images[-1:].expand(config.batch_size - n, *images.shape[1:])
                images = torch.cat([images, pad])
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            batch_start = time.perf_counter()
            with torch.inference_mode(), autocast:
                output = runner(images)[:n]
            if done == 0 and runner.compiled is not None and not runner.reused:
                logger.info(
                    "%s: first compiled batch took %.1f s (compilation included)",
                    kind,
                    time.perf_counter() - batch_start,
                )
            features = output.float().cpu().numpy()
            if features.shape != (len(hashes), extractor.feature_dim):
                raise ValueError(
                    f"{type(extractor).__name__} returned features of shape "
                    f"{features.shape} for {len(hashes)} images; expected "
                    f"({len(hashes)}, {extractor.feature_dim}) (its feature_dim)"
                )
            if not np.isfinite(features).all():
                raise ValueError(
                    f"{kind} produced NaN/inf features at precision {precision} for images "
                    f"such as content_hash {hashes[0]}; set feature_extraction.precision to "
                    "fp32 (fp16 overflows on some backbones)"
                )
            done += len(hashes)
            bar.update(len(hashes))
            if not bar_shown and done >= next_log and done < total:
                elapsed = time.perf_counter() - start
                logger.info(
                    "%s: %d/%d images (%.0f%%), %.1f img/s",
                    kind,
                    done,
                    total,
                    100 * done / total,
                    done / max(elapsed, 1e-9),
                )
                next_log = (done // step + 1) * step
            stats.update(n=done, seconds=time.perf_counter() - start)
            yield list(hashes), features
    finally:
        bar.close()
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:  # stop workers now if the consumer stopped early
            shutdown()
    seconds = time.perf_counter() - start
    stats.update(n=done, seconds=seconds, compiled=runner.compiled is not None)
    logger.info(
        "%s: extracted %d images in %.1f s (%.1f img/s) on %s, precision %s%s",
        kind,
        done,
        seconds,
        done / max(seconds, 1e-9),
        device,
        precision,
        ", compiled" if runner.compiled is not None else "",
    )


class _ShardWriter:
    """Buffers extracted rows and writes a cache shard every ``rows_per_shard`` rows."""

    def __init__(self, cache: FeatureCache, rows_per_shard: int) -> None:
        self.cache = cache
        self.rows_per_shard = rows_per_shard
        self.hashes: list[str] = []
        self.blocks: list[np.ndarray] = []
        self.buffered = 0
        self.peak_buffered = 0
        self.written: list[str] = []
        self.rows_written = 0

    def add(self, hashes: list[str], features: np.ndarray) -> None:
        self.hashes.extend(hashes)
        self.blocks.append(features)
        self.buffered += len(hashes)
        self.peak_buffered = max(self.peak_buffered, self.buffered)
        while self.buffered >= self.rows_per_shard:
            block = np.concatenate(self.blocks)
            self._write(self.hashes[: self.rows_per_shard], block[: self.rows_per_shard])
            self.hashes = self.hashes[self.rows_per_shard :]
            # Copy, so the remainder does not keep the whole concatenated block alive.
            self.blocks = [block[self.rows_per_shard :].copy()]
            self.buffered -= self.rows_per_shard

    def flush(self) -> None:
        if self.buffered:
            self._write(self.hashes, np.concatenate(self.blocks))
        self.hashes, self.blocks, self.buffered = [], [], 0

    def _write(self, hashes: list[str], features: np.ndarray) -> None:
        self.written.append(self.cache.write(hashes, features))
        self.rows_written += len(hashes)


def _shard_mask(hashes: pd.Series, config: ExtractionConfig) -> pd.Series:
    if config.num_shards == 1:
        return pd.Series(True, index=hashes.index)
    try:
        buckets = hashes.map(lambda h: int(h[:8], 16) % config.num_shards)
    except ValueError as exc:
        raise ValueError(
            f"content_hash values must be hex digests (sha256 from data_ingestion) to split "
            f"the work over num_shards={config.num_shards}: {exc}"
        ) from exc
    return buckets == config.shard_index


def update_cache(
    manifest: pd.DataFrame,
    store: ImageStore,
    extractor: torch.nn.Module,
    cache: FeatureCache,
    config: ExtractionConfig,
) -> dict[str, Any]:
    """Extract the features of this shard's images that the cache lacks, and write them.

    Images are deduplicated by content hash; with ``num_shards > 1`` only hashes with
    ``int(hash[:8], 16) % num_shards == shard_index`` are handled, so parallel workers split
    the work without overlap. Shards are written every ``rows_per_shard`` rows, so memory holds
    at most one batch plus one shard buffer; rows buffered when extraction fails are still
    written, so a re-run resumes where this one stopped.

    Args:
        manifest: Table with ``image_path`` and ``content_hash`` (other columns ignored).
        store: Where the images are read from.
        extractor: A ``FeatureExtractor`` whose identity is the cache's.
        cache: The cache of this extractor (``FeatureCacheRoot.open(extractor.identity())``).
        config: Extraction parameters.

    Returns:
        A JSON-ready report: kind, cache_key, cache_path, n_manifest, n_unique, n_in_shard,
        n_cached, n_extracted, n_shard_files_written, peak_buffered_rows, seconds,
        images_per_s, device, precision, compiled, shard_index, num_shards, feature_dim,
        identity.

    Raises:
        CacheIdentityError: if the cache belongs to another extractor identity.
        ImageReadError: if an image cannot be read.
    """
    start = time.perf_counter()
    _check_rows(manifest, "the manifest")
    identity = extractor.identity()
    if canonical_json(identity) != canonical_json(cache.identity):
        raise CacheIdentityError(
            f"the cache {cache.path} was opened for another identity than the extractor's "
            f"{canonical_json(identity)}; open it with FeatureCacheRoot.open(extractor.identity())"
        )
    device = resolve_device(config.device)
    dtype = resolve_precision(config.precision, device)
    kind = _kind(extractor)

    unique = manifest.drop_duplicates("content_hash")
    hashes = unique["content_hash"].astype(str)
    in_shard = unique[_shard_mask(hashes, config).to_numpy()]
    cached = cache.cached_hashes()
    todo = in_shard[~in_shard["content_hash"].astype(str).isin(cached).to_numpy()]
    n_cached = len(in_shard) - len(todo)
    logger.info(
        "%s: %d manifest rows, %d unique images, %d in shard %d/%d, %d cached, %d to extract "
        "into %s",
        kind,
        len(manifest),
        len(unique),
        len(in_shard),
        config.shard_index,
        config.num_shards,
        n_cached,
        len(todo),
        cache.path,
        extra=cache_use(n_cached, len(todo), "images"),
    )

    writer = _ShardWriter(cache, config.rows_per_shard)
    stats: dict[str, Any] = {}
    try:
        for batch_hashes, features in _extract(
            todo, store, extractor, config, device, dtype, stats
        ):
            writer.add(batch_hashes, features)
    except BaseException:
        if writer.buffered:
            with contextlib.suppress(Exception):
                kept = writer.buffered
                writer.flush()
                logger.warning(
                    "%s: extraction failed; kept the %d rows extracted since the last shard "
                    "so that a re-run resumes",
                    kind,
                    kept,
                )
        raise
    writer.flush()
    seconds = time.perf_counter() - start
    report = {
        "kind": kind,
        "cache_key": cache.key,
        "cache_path": cache.path,
        "n_manifest": int(len(manifest)),
        "n_unique": int(len(unique)),
        "n_in_shard": int(len(in_shard)),
        "n_cached": int(n_cached),
        "n_extracted": int(writer.rows_written),
        "n_shard_files_written": len(writer.written),
        "peak_buffered_rows": int(writer.peak_buffered),
        "seconds": round(seconds, 3),
        "images_per_s": round(writer.rows_written / seconds, 2) if writer.rows_written else 0.0,
        "device": str(device),
        "precision": precision_name(dtype),
        "compiled": bool(stats.get("compiled", False)),
        "shard_index": config.shard_index,
        "num_shards": config.num_shards,
        "feature_dim": int(extractor.feature_dim),
        "identity": identity,
    }
    logger.info(
        "%s: cache %s updated: %d extracted, %d already cached, %.1f s",
        kind,
        cache.path,
        report["n_extracted"],
        n_cached,
        seconds,
    )
    return report
