"""Train/val/test split grouped by source and stratified by label.

All images of one ``source_id`` (a video, a person, a camera...) go to the same split, so a
model is never tested on a source it was trained on. Sources are put into strata by their
label composition (real-only, fake-only, mixed); inside each stratum they are ordered by a
seeded hash of their id and cut into train/val/test at the image-count targets given by the
fractions. Ordering by hash keeps the split stable: adding sources inserts them at random
positions, and most existing sources keep their split.
"""

from __future__ import annotations

import hashlib
import logging
import math

import pandas as pd

from deepfake_kedro.ingestion.config import SplitConfig

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_LABELS = ("real", "fake")


def split_by_source(manifest: pd.DataFrame, config: SplitConfig) -> pd.DataFrame:
    """Assign every image to ``train``, ``val`` or ``test``, keeping each source in one split.

    Args:
        manifest: Validated manifest with ``source_id`` and ``label`` (``real``/``fake``).
        config: Split fractions and seed.

    Returns:
        A copy of ``manifest`` with a ``split`` column (str); rows keep their order.

    Raises:
        ValueError: if the columns are missing or hold bad values, or if a split would be
            empty or lack a label (too few sources for the fractions).
    """
    sources = _source_table(manifest)
    fractions = config.fractions
    _check_enough_sources(sources, fractions)

    assignment: dict[str, str] = {}
    for stratum, members in sources.groupby("stratum", sort=True):
        ordered = members.assign(
            key=[_order_key(config.seed, s) for s in members.index]
        ).sort_values("key", kind="stable")
        cuts = _cut_points(ordered["n"].tolist(), list(fractions.values()))
        names = _names_from_cuts(len(ordered), cuts)
        assignment.update(zip(ordered.index, names, strict=False))
        logger.debug("Stratum %s: %d sources cut at %s", stratum, len(ordered), cuts)

    result = manifest.copy()
    result["split"] = result["source_id"].astype(str).map(assignment)
    crossing = result.groupby("source_id")["split"].nunique()
    if (crossing > 1).any():  # cannot happen by construction; guard the invariant anyway
        raise RuntimeError(f"sources in several splits: {list(crossing[crossing > 1].index)}")
    _check_splits(result, sources, fractions)
    for name in SPLITS:
        part = result[result["split"] == name]
        logger.info(
            "Split %s: %d images (%d real, %d fake) from %d sources",
            name,
            len(part),
            int((part["label"] == "real").sum()),
            int((part["label"] == "fake").sum()),
            part["source_id"].nunique(),
        )
    return result


def _source_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Per source: image counts by label and its stratum."""
    missing = [c for c in ("source_id", "label") if c not in manifest.columns]
    if missing:
        raise ValueError(
            f"cannot split: manifest has no column(s) {', '.join(missing)}; columns present: "
            f"{', '.join(map(str, manifest.columns))}. Split the validated manifest."
        )
    if manifest.empty:
        raise ValueError("cannot split an empty manifest")
    if manifest["source_id"].isna().any():
        raise ValueError(
            f"cannot split: {int(manifest['source_id'].isna().sum())} rows have no source_id"
        )
    bad_labels = sorted(set(manifest["label"].astype(str)) - set(_LABELS))
    if bad_labels:
        raise ValueError(
            f"cannot split: labels {bad_labels} are not one of {', '.join(_LABELS)}; split "
            "the validated manifest (validate_manifest normalises labels)"
        )
    counts = pd.crosstab(manifest["source_id"].astype(str), manifest["label"].astype(str))
    sources = pd.DataFrame(
        {label: counts[label] if label in counts else 0 for label in _LABELS},
        index=counts.index,
    )
    sources["n"] = sources["real"] + sources["fake"]
    sources["stratum"] = [
        "mixed" if r and f else ("real_only" if r else "fake_only")
        for r, f in zip(sources["real"], sources["fake"], strict=False)
    ]
    return sources


def _order_key(seed: int, source_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{source_id}".encode()).hexdigest()


def _largest_remainder(total: int, fractions: list[float]) -> list[int]:
    """Integer targets summing to ``total``, proportional to ``fractions``."""
    exact = [total * f for f in fractions]
    targets = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda k: (targets[k] - exact[k], k))
    for k in by_remainder[: total - sum(targets)]:
        targets[k] += 1
    return targets


def _cut_points(sizes: list[int], fractions: list[float]) -> list[int]:
    """Where to cut the hash-ordered sources of one stratum into the splits.

    A source goes to the split whose image-count range holds the middle of the source's
    images. When the stratum has at least one source per split, every split gets one, so
    that both labels reach every split whenever possible.
    """
    targets = _largest_remainder(sum(sizes), fractions)
    bounds = [sum(targets[: k + 1]) for k in range(len(targets) - 1)]
    cuts = []
    position = 0.0
    index = 0
    for bound in bounds:
        while index < len(sizes) and position + sizes[index] / 2 < bound:
            position += sizes[index]
            index += 1
        cuts.append(index)
    n, parts = len(sizes), len(fractions)
    if n >= parts:
        # Clamp cut k into [k + 1, n - (parts - 1 - k)] keeping cuts strictly increasing.
        for k in range(len(cuts)):
            low = (cuts[k - 1] + 1) if k else 1
            cuts[k] = max(cuts[k], low)
        for k in reversed(range(len(cuts))):
            high = (cuts[k + 1] - 1) if k + 1 < len(cuts) else n - 1
            cuts[k] = min(cuts[k], high)
    return cuts


def _names_from_cuts(n: int, cuts: list[int]) -> list[str]:
    edges = [0, *cuts, n]
    names: list[str] = []
    for k, name in enumerate(SPLITS):
        names.extend([name] * (edges[k + 1] - edges[k]))
    return names


def _describe(fractions: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in fractions.items())


def _check_enough_sources(sources: pd.DataFrame, fractions: dict[str, float]) -> None:
    with_real = int((sources["real"] > 0).sum())
    with_fake = int((sources["fake"] > 0).sum())
    if min(with_real, with_fake) < len(SPLITS):
        raise ValueError(
            f"too few sources to split: {len(sources)} sources, {with_real} with real and "
            f"{with_fake} with fake images, but each of the {len(SPLITS)} splits "
            f"({_describe(fractions)}) needs its own sources of both labels, so at least "
            f"{len(SPLITS)} sources with real and {len(SPLITS)} with fake images are needed. "
            "Add sources (images of distinct source_id) or check that source_id is not the "
            "same for every image."
        )


def _check_splits(result: pd.DataFrame, sources: pd.DataFrame, fractions: dict[str, float]) -> None:
    counts = pd.crosstab(result["split"], result["label"]).reindex(
        index=list(SPLITS), columns=list(_LABELS), fill_value=0
    )
    lacking = [
        f"{split} has no {label} images"
        for split in SPLITS
        for label in _LABELS
        if counts.at[split, label] == 0
    ]
    if lacking:
        table = "; ".join(
            f"{s}: {counts.at[s, 'real']} real / {counts.at[s, 'fake']} fake" for s in SPLITS
        )
        raise ValueError(
            f"cannot split {len(result)} images from {len(sources)} sources with fractions "
            f"{_describe(fractions)}: {', '.join(lacking)} ({table}). Add sources of the "
            "missing label, or change data_ingestion.split (fractions or seed)."
        )
