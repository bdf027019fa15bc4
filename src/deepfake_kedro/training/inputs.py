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


def training_images(
    manifest: pd.DataFrame,
    tables: Mapping[str, Mapping[str, np.ndarray]],
    branches: Sequence[str],
) -> pd.DataFrame:
    """The image behind each training row, in the order the rows are trained on: the train
    split (:func:`split_arrays`), then its augmented views (:func:`augmented_arrays`), then
    the synthetic fakes of its reals (:func:`synthetic_arrays`) of ``branches``' tables.

    This is what a trainable branch reads for those rows: ``image_path`` and ``view`` (None:
    the image itself, which the branch augments on the fly, so an augmented view's row reads
    its source; ``sbi:<k>``: synthetic fake ``k`` of it, served by
    :class:`~deepfake_kedro.training.synthetic.SyntheticFakes`).
    """
    from deepfake_kedro.training.synthetic import VIEW_PREFIX

    train = manifest[manifest["split"] == "train"]
    path_of = dict(
        zip(train["content_hash"].astype(str), train["image_path"].astype(str), strict=False)
    )
    paths: list[str] = train["image_path"].astype(str).tolist()
    views: list[str | None] = [None] * len(paths)
    if branches:
        for source, _ in _common_views(tables, branches, "augmented", "augmented_view",
                                       set(path_of))[1]:  # fmt: skip
            paths.append(path_of[source])
            views.append(None)
        reals = set(train.loc[train["label"] == "real", "content_hash"].astype(str))
        for source, index in _common_views(tables, branches, "synthetic", "synthetic_index",
                                           reals)[1]:  # fmt: skip
            paths.append(path_of[source])
            views.append(f"{VIEW_PREFIX}{index}")
    return pd.DataFrame({"image_path": paths, "view": pd.Series(views, dtype=object)})


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
    keyed, keys = _common_views(tables, branches, prefix, index_key, sources)
    common = [f"{h}/{v}" for h, v in keys]
    features = {
        name: np.asarray(tables[name][f"{prefix}_features"], dtype=np.float32)[
            keyed[name].get_indexer(common)
        ]
        if common
        else np.zeros((0, np.asarray(tables[name]["features"]).shape[1]), np.float32)
        for name in branches
    }
    return features, [h for h, _ in keys]


def _common_views(
    tables: Mapping[str, Mapping[str, np.ndarray]],
    branches: Sequence[str],
    prefix: str,
    index_key: str,
    sources: set[str],
) -> tuple[dict[str, pd.Index], list[tuple[str, int]]]:
    """Each branch's ``"<source hash>/<index>"`` keys, and the ``(source, index)`` every
    branch has, of a source in ``sources``, in the first branch's order."""
    keyed = {}
    for name in branches:
        table = tables[name]
        hashes = np.asarray(table.get(f"{prefix}_hash", np.array([], dtype=str))).astype(str)
        views = np.asarray(table.get(index_key, np.array([], dtype=np.int64)))
        keyed[name] = pd.Index([f"{h}/{int(v)}" for h, v in zip(hashes, views, strict=True)])
    common = keyed[branches[0]]
    for name in branches[1:]:
        common = common.intersection(keyed[name], sort=False)
    keys = [(k.split("/")[0], int(k.split("/")[1])) for k in common]
    return keyed, [(h, v) for h, v in keys if h in sources]
