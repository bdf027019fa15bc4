"""Test-split AUC of each branch alone and of the fused ensemble: in-domain on the demo data,
in-domain on a second generator, and across generators.

Everything follows conf/base, nothing is tuned here: the ``demo_data`` dataset (quick: 300
images), ``data_ingestion`` (``validate_manifest``, then ``split_by_source``), the
``feature_extraction`` backbones (weights ``none``: no pretrained weights) and runtime, and
``ensemble_training`` for the fusion head; a single-branch row only changes ``branches``.

The second generator (:mod:`benchmarks.second_source`: real photographs of scikit-image,
copy-move, local warp, re-synthesis and JPEG-region fakes, 800 images; quick: 160) goes
through the same validation and grouped split (its sources are the photos). Each model row
is trained twice, with early stopping on the val split of its own data: on the demo (scored
on the demo's test split: demo in-domain; and on the second generator's test split:
cross-generator) and on the second generator (scored on its test split: in-domain).

Features come from the persistent cache ``results/cache`` (filled by the incremental
benchmark where the images and the extractor identity match; the rest is extracted here).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from benchmarks.common import (
    CACHE,
    Result,
    Table,
    backbone_config,
    benchmark_demo_config,
    benchmark_second_source_config,
    branches,
    fmt,
    image_store,
    ingestion_config,
    pipeline_params,
    runtime_config,
    validated_demo,
    validated_second_source,
)
from benchmarks.second_source import PHOTOS
from deepfake_kedro.features import FeatureCacheRoot, update_cache
from deepfake_kedro.ingestion import split_by_source
from deepfake_kedro.models import build_extractor
from deepfake_kedro.training import TrainingConfig, build_model, predict_proba, train_fusion
from deepfake_kedro.training.inputs import split_arrays

TARGET_OVERALL = 0.95
TARGET_FAMILY = 0.90
TARGET_SECOND = 0.95
TARGET_CROSS = 0.75
SETTINGS = {
    "demo": "demo in-domain (train and test on the demo)",
    "second": "second generator in-domain (train and test on it)",
    "cross": "cross-generator (train on the demo, test on the second generator)",
}


@dataclass(frozen=True)
class Scores:
    """One model's test AUC, overall and per family (that family's fakes vs all test reals)."""

    overall: float
    by_family: dict[str, float]


def _extract(manifest: pd.DataFrame) -> tuple[dict[str, dict[str, np.ndarray]], list[list[str]]]:
    """Bring the persistent cache up to date and collect each branch's feature table."""
    store, runtime, root = image_store(), runtime_config(), FeatureCacheRoot(str(CACHE))
    tables, rows = {}, []
    hashes = pd.unique(manifest["content_hash"].astype(str))
    for branch in branches():
        start = time.perf_counter()
        extractor = build_extractor(backbone_config(branch))
        cache = root.open(extractor.identity())
        report = update_cache(manifest, store, extractor, cache, runtime)
        tables[branch] = {
            "content_hash": np.asarray(hashes, dtype=str),
            "features": cache.load(list(hashes)),
            "identity": np.array(json.dumps(extractor.identity(), sort_keys=True)),
        }
        seconds = time.perf_counter() - start
        rows.append(
            [
                f"{branch} {extractor.config.arch} @ {extractor.config.image_size}",
                str(report["n_cached"]),
                str(report["n_extracted"]),
                fmt(seconds),
                str(extractor.feature_dim),
            ]
        )
        del extractor
    return tables, rows


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _families(manifest: pd.DataFrame) -> list[str]:
    return sorted(m for m in manifest["manipulation"].unique() if m != "none")


def _score(model, manifest: pd.DataFrame, tables, branch_list: list[str]) -> Scores:
    """AUC of a trained head on the test split of ``manifest``."""
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    x, y = split_arrays(manifest, tables, branch_list, "test")
    p = predict_proba(model, x)
    is_real = (test["label"] == "real").to_numpy()
    by_family = {}
    for family in _families(test):
        mask = is_real | (test["manipulation"] == family).to_numpy()
        by_family[family] = _auc(y[mask], p[mask])
    return Scores(_auc(y, p), by_family)


def _train(manifest: pd.DataFrame, tables, branch_list: list[str], params: dict):
    """Train a fusion head on the train split of ``manifest`` (early stopping on its val)."""
    config = TrainingConfig.model_validate({**params, "branches": branch_list})
    train_x, y_train = split_arrays(manifest, tables, branch_list, "train")
    val_x, y_val = split_arrays(manifest, tables, branch_list, "val")
    start = time.perf_counter()
    result = train_fusion(train_x, y_train, val_x, y_val, config)
    return build_model(result.checkpoint), result, time.perf_counter() - start


def _auc_table(
    title: str, manifest: pd.DataFrame, scores: dict[str, Scores]
) -> tuple[Table, dict[str, int]]:
    test = manifest[manifest["split"] == "test"]
    families = _families(test)
    n_real = int((test["label"] == "real").sum())
    counts = {f: int((test["manipulation"] == f).sum()) for f in families}
    rows = [
        [
            name,
            fmt(s.overall, 3),
            *(fmt(s.by_family.get(f), 3) for f in families),
            fmt(min(s.by_family.values(), default=float("nan")), 3),
        ]
        for name, s in scores.items()
    ]
    table = Table(
        f"{title}: test AUC ({len(test)} images: {n_real} real; each family's fakes vs all "
        "test reals)",
        [
            "model",
            f"overall (n={len(test)})",
            *(f"{f} (n={counts[f]}+{n_real})" for f in families),
            "min family",
        ],
        rows,
    )
    return table, {"real": n_real, **counts}


def _split_note(name: str, manifest: pd.DataFrame) -> str:
    counts = manifest["split"].value_counts()
    sources = manifest.groupby("split")["source_id"].nunique()
    return (
        f"{name}: train/val/test = {counts.get('train', 0)}/{counts.get('val', 0)}/"
        f"{counts.get('test', 0)} images from {sources.get('train', 0)}/{sources.get('val', 0)}/"
        f"{sources.get('test', 0)} sources"
    )


def run(quick: bool) -> Result:
    """Train each branch alone and all branches fused on each generator; score the test splits."""
    dataset, second = benchmark_demo_config(quick), benchmark_second_source_config(quick)
    ingestion = ingestion_config()
    data = {
        "demo": split_by_source(validated_demo(dataset), ingestion.split),
        "second": split_by_source(validated_second_source(second), ingestion.split),
    }
    tables, extraction_rows = _extract(pd.concat(data.values(), ignore_index=True))

    params = pipeline_params("ensemble_training")
    fused = list(params["branches"] or branches())
    variants = {f"{b} alone": [b] for b in fused} | {"fused (" + " + ".join(fused) + ")": fused}

    scores: dict[str, dict[str, Scores]] = {setting: {} for setting in SETTINGS}
    training_rows, metrics = [], {}
    for name, branch_list in variants.items():
        metrics[name] = {"branches": branch_list}
        for trained_on in ("demo", "second"):
            model, result, train_s = _train(data[trained_on], tables, branch_list, params)
            training_rows.append(
                [
                    name,
                    trained_on,
                    fmt(train_s),
                    str(len(result.history)),
                    str(result.best_epoch),
                    fmt(result.best_val_auc, 3),
                ]
            )
            metrics[name][f"trained_on_{trained_on}"] = {
                "train_s": round(train_s, 2),
                "epochs": len(result.history),
                "best_epoch": result.best_epoch,
                "best_val_auc": round(result.best_val_auc, 4),
            }
            tested = ["demo", "cross"] if trained_on == "demo" else ["second"]
            for setting in tested:
                tested_on = "demo" if setting == "demo" else "second"
                s = _score(model, data[tested_on], tables, branch_list)
                scores[setting][name] = s
                metrics[name][setting] = {
                    "test_auc": round(s.overall, 4),
                    "test_auc_by_family": {f: round(v, 4) for f, v in s.by_family.items()},
                }

    summary = Table(
        "test AUC per model: in-domain on each generator and across generators",
        ["model", "demo in-domain", "second in-domain", "cross-generator"],
        [
            [name, *(fmt(scores[setting][name].overall, 3) for setting in SETTINGS)]
            for name in variants
        ],
    )
    auc_tables, counts = [], {}
    for setting, title in SETTINGS.items():
        table, counts[setting] = _auc_table(
            title, data["demo" if setting == "demo" else "second"], scores[setting]
        )
        auc_tables.append(table)
    training_table = Table(
        "fusion-head training (ensemble_training of conf/base; early stopping on val AUC)",
        ["model", "trained on", "train s", "epochs", "best epoch", "best val AUC"],
        training_rows,
        left_columns=2,
    )
    n_images = sum(len(m) for m in data.values())
    extraction_table = Table(
        f"feature extraction of {n_images} images (both generators) into results/cache",
        ["branch", "cached", "extracted", "seconds", "dim"],
        extraction_rows,
    )

    fused_name = list(variants)[-1]
    demo_auc = scores["demo"][fused_name].overall
    demo_min = min(scores["demo"][fused_name].by_family.values())
    second_auc = scores["second"][fused_name].overall
    cross_auc = scores["cross"][fused_name].overall
    notes = [
        f"data: demo_data of conf/base ({dataset.n_images} images, {dataset.image_size} px, "
        f"seed {dataset.seed}); second generator ({second.n_images} images, "
        f"{second.image_size} px, seed {second.seed}: crops of {len(PHOTOS)} photos, "
        f"{len(set(PHOTOS.values()))} sources); split by source, seed {ingestion.split.seed}.",
        _split_note("demo", data["demo"]),
        _split_note("second generator", data["second"]),
        "backbones with weights none (random init): no pretrained weights are used.",
        "the test splits are small (a few dozen fakes per family; the second generator's test "
        "split holds the crops of two or three photos), so one AUC point is a few misranked "
        "pairs.",
    ]
    passed = (
        demo_auc >= TARGET_OVERALL
        and demo_min >= TARGET_FAMILY
        and second_auc >= TARGET_SECOND
        and cross_auc >= TARGET_CROSS
    )
    return Result(
        name="quality",
        title="test-split AUC per branch and fused: demo in-domain, second generator "
        "in-domain, cross-generator; overall and per manipulation family",
        target=(
            f"fused: demo overall AUC >= {TARGET_OVERALL} with no family below "
            f"{TARGET_FAMILY}; second generator in-domain >= {TARGET_SECOND}; "
            f"cross-generator >= {TARGET_CROSS}"
        ),
        passed=passed,
        verdict=(
            f"fused: demo {demo_auc:.3f} (lowest family {demo_min:.3f}), second {second_auc:.3f}, "
            f"cross {cross_auc:.3f}"
        ),
        tables=[summary, *auc_tables, training_table, extraction_table],
        notes=notes,
        metrics={
            "n_images": {name: len(m) for name, m in data.items()},
            "test_counts": counts,
            "models": metrics,
        },
    )
