"""Line up per-branch feature tables with the manifest's rows of one split."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

LABEL_VALUES = {"real": 0, "fake": 1}


def branch_identity(table: Mapping[str, np.ndarray]) -> dict:
    """The backbone identity stored with a branch's feature table."""
    return json.loads(str(table["identity"]))


def branch_config(table: Mapping[str, np.ndarray]) -> dict:
    """The backbone config stored with a branch's feature table (rebuilds the extractor)."""
    return json.loads(str(table["backbone"]))


def features_for_rows(
    rows: pd.DataFrame, tables: Mapping[str, Mapping[str, np.ndarray]], branches: Sequence[str]
) -> dict[str, np.ndarray]:
    """Feature matrix of each branch, in the order of ``rows`` (joined on ``content_hash``).

    Args:
        rows: Manifest rows with ``content_hash``.
        tables: Per branch, ``{"content_hash": [n], "features": [n, d], "identity": json}``.
        branches: Branches to take.

    Raises:
        ValueError: naming the branch and the fix when a branch is missing or lacks
            features for some rows.
    """
    out = {}
    hashes = rows["content_hash"].astype(str).to_numpy()
    for name in branches:
        if name not in tables:
            raise ValueError(
                f"branch {name!r} is in ensemble_training.branches but has no features; known "
                f"branches: {', '.join(sorted(tables))}. Add it under "
                "feature_extraction.backbones (enabled) or remove it from "
                "ensemble_training.branches"
            )
        table = tables[name]
        index = pd.Index(table["content_hash"].astype(str))
        positions = index.get_indexer(hashes)
        if (positions < 0).any():
            missing = hashes[positions < 0]
            raise ValueError(
                f"branch {name!r}: {len(missing)} images have no features (e.g. {missing[0]}); "
                "re-run feature_extraction for this manifest"
            )
        out[name] = np.asarray(table["features"], dtype=np.float32)[positions]
    return out


def split_arrays(
    manifest: pd.DataFrame,
    tables: Mapping[str, Mapping[str, np.ndarray]],
    branches: Sequence[str],
    split: str,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features and 0/1 labels (1 = fake) of one split.

    Raises:
        ValueError: if the split is empty (names the split and the split fractions to fix).
    """
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise ValueError(
            f"the {split!r} split is empty: check data_ingestion.split fractions and the manifest"
        )
    labels = rows["label"].map(LABEL_VALUES)
    if labels.isna().any():
        bad = sorted(rows.loc[labels.isna(), "label"].astype(str).unique())
        raise ValueError(f"labels {bad} in the {split!r} split are not real/fake")
    return features_for_rows(rows, tables, branches), labels.to_numpy(dtype=np.int64)


def augmented_arrays(
    manifest: pd.DataFrame,
    tables: Mapping[str, Mapping[str, np.ndarray]],
    branches: Sequence[str],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features and labels of the augmented views of the train split's images.

    A view counts when every branch has it (the views come from one augmentation config, so
    they do unless a branch was extracted with another); none when a table has no views.

    Returns:
        Per-branch ``[n_views, dim]`` features and the views' 0/1 labels.
    """
    rows = manifest[manifest["split"] == "train"].drop_duplicates("content_hash")
    label = dict(zip(rows["content_hash"].astype(str), rows["label"].map(LABEL_VALUES), strict=True))
    features, sources = _train_views(tables, branches, "augmented", "augmented_view", set(label))
    return features, np.array([label[h] for h in sources], dtype=np.int64)


def synthetic_arrays(
    manifest: pd.DataFrame,
    tables: Mapping[str, Mapping[str, np.ndarray]],
    branches: Sequence[str],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features and labels (all 1 = fake) of the synthetic fakes of the train split's reals.

    A fake counts when every branch has it and its source is a real image of the train split
    of ``manifest`` (a table collected for another manifest cannot leak val/test images in).

    Returns:
        Per-branch ``[n_fakes, dim]`` features and their labels.
    """
    rows = manifest[(manifest["split"] == "train") & (manifest["label"] == "real")]
    reals = set(rows["content_hash"].astype(str))
    features, sources = _train_views(tables, branches, "synthetic", "synthetic_index", reals)
    return features, np.ones(len(sources), dtype=np.int64)


def _train_views(
    tables: Mapping[str, Mapping[str, np.ndarray]],
    branches: Sequence[str],
    prefix: str,
    index_key: str,
    sources: set[str],
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The ``<prefix>_features`` rows every branch has, of a source image in ``sources``.

    Returns:
        Per-branch features, in the first branch's order, and each row's source hash.
    """
    keyed = {}
    for name in branches:
        table = tables[name]
        hashes = np.asarray(table.get(f"{prefix}_hash", np.array([], dtype=str))).astype(str)
        views = np.asarray(table.get(index_key, np.array([], dtype=np.int64)))
        keyed[name] = pd.Index([f"{h}/{int(v)}" for h, v in zip(hashes, views, strict=True)])
    common = keyed[branches[0]]
    for name in branches[1:]:
        common = common.intersection(keyed[name], sort=False)
    common = [k for k in common if k.split("/")[0] in sources]
    features = {
        name: np.asarray(tables[name][f"{prefix}_features"], dtype=np.float32)[
            keyed[name].get_indexer(common)
        ]
        if common
        else np.zeros((0, np.asarray(tables[name]["features"]).shape[1]), np.float32)
        for name in branches
    }
    return features, [k.split("/")[0] for k in common]
