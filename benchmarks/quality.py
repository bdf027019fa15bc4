"""Test-split AUC of each branch alone and of the fused ensemble, on the default demo data.

Everything follows conf/base, nothing is tuned here: the ``demo_data`` dataset (quick: 300
images), ``data_ingestion`` (``validate_manifest``, then ``split_by_source``), the
``feature_extraction`` backbones (weights ``none``: no pretrained weights) and runtime, and
``ensemble_training`` for the fusion head; a single-branch row only changes ``branches``.
Features come from the persistent cache ``results/cache`` (filled by the incremental
benchmark where the images and the extractor identity match; the rest is extracted here).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from benchmarks.common import (
    CACHE,
    Result,
    Table,
    backbone_config,
    benchmark_demo_config,
    branches,
    fmt,
    image_store,
    ingestion_config,
    pipeline_params,
    runtime_config,
    validated_demo,
)
from deepfake_kedro.features import FeatureCacheRoot, update_cache
from deepfake_kedro.ingestion import split_by_source
from deepfake_kedro.models import build_extractor
from deepfake_kedro.training import TrainingConfig, build_model, predict_proba, train_fusion
from deepfake_kedro.training.inputs import split_arrays

TARGET_OVERALL = 0.90
TARGET_FAMILY = 0.80


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


def run(quick: bool) -> Result:
    """Train each branch alone and all branches fused; score the test split."""
    dataset = benchmark_demo_config(quick)
    ingestion = ingestion_config()
    manifest = split_by_source(validated_demo(dataset), ingestion.split)
    tables, extraction_rows = _extract(manifest)

    params = pipeline_params("ensemble_training")
    fused = list(params["branches"] or branches())
    variants = {f"{b} alone": [b] for b in fused} | {"fused (" + " + ".join(fused) + ")": fused}
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    families = sorted(m for m in test["manipulation"].unique() if m != "none")
    is_real = (test["label"] == "real").to_numpy()

    auc_rows, training_rows, metrics = [], [], {}
    for name, branch_list in variants.items():
        config = TrainingConfig.model_validate({**params, "branches": branch_list})
        train_x, y_train = split_arrays(manifest, tables, branch_list, "train")
        val_x, y_val = split_arrays(manifest, tables, branch_list, "val")
        test_x, y_test = split_arrays(manifest, tables, branch_list, "test")
        start = time.perf_counter()
        result = train_fusion(train_x, y_train, val_x, y_val, config)
        train_s = time.perf_counter() - start
        p = predict_proba(build_model(result.checkpoint), test_x)
        overall = _auc(y_test, p)
        by_family = {}
        for family in families:
            mask = is_real | (test["manipulation"] == family).to_numpy()
            by_family[family] = _auc(y_test[mask], p[mask])
        auc_rows.append(
            [
                name,
                fmt(overall, 3),
                *(fmt(by_family[f], 3) for f in families),
                fmt(min(by_family.values()), 3),
            ]
        )
        training_rows.append(
            [
                name,
                fmt(train_s),
                str(len(result.history)),
                str(result.best_epoch),
                fmt(result.best_val_auc, 3),
            ]
        )
        metrics[name] = {
            "branches": branch_list,
            "test_auc": round(overall, 4),
            "test_auc_by_family": {f: round(v, 4) for f, v in by_family.items()},
            "train_s": round(train_s, 2),
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "best_val_auc": round(result.best_val_auc, 4),
        }

    n_real = int(is_real.sum())
    counts = {f: int((test["manipulation"] == f).sum()) for f in families}
    auc_table = Table(
        f"test AUC ({len(test)} images: {n_real} real; each family's fakes vs all test reals)",
        [
            "model",
            f"overall (n={len(test)})",
            *(f"{f} (n={counts[f]}+{n_real})" for f in families),
            "min family",
        ],
        auc_rows,
    )
    split_counts = manifest["split"].value_counts()
    training_table = Table(
        "fusion-head training (ensemble_training of conf/base; early stopping on val AUC)",
        ["model", "train s", "epochs", "best epoch", "best val AUC"],
        training_rows,
    )
    extraction_table = Table(
        f"feature extraction of {len(manifest)} images into results/cache",
        ["branch", "cached", "extracted", "seconds", "dim"],
        extraction_rows,
    )
    fused_name = list(variants)[-1]
    fused_auc = metrics[fused_name]["test_auc"]
    fused_min = min(metrics[fused_name]["test_auc_by_family"].values())
    notes = [
        f"data: demo_data of conf/base ({dataset.n_images} images, {dataset.image_size} px, "
        f"seed {dataset.seed}); split train/val/test = {split_counts.get('train', 0)}/"
        f"{split_counts.get('val', 0)}/{split_counts.get('test', 0)} images (by source, "
        f"seed {ingestion.split.seed}).",
        "backbones with weights none (random init): no pretrained weights are used.",
        f"the test split is small: each family has about {min(counts.values())} fakes, so "
        "one AUC point is a few misranked pairs.",
    ]
    passed = fused_auc >= TARGET_OVERALL and fused_min >= TARGET_FAMILY
    return Result(
        name="quality",
        title="test-split AUC per branch and fused, overall and per manipulation family",
        target=f"fused overall AUC >= {TARGET_OVERALL} and no family below {TARGET_FAMILY}",
        passed=passed,
        verdict=f"fused overall AUC {fused_auc:.3f}, lowest family AUC {fused_min:.3f}",
        tables=[auc_table, training_table, extraction_table],
        notes=notes,
        metrics={
            "n_images": len(manifest),
            "n_test": len(test),
            "test_counts": {"real": n_real, **counts},
            "models": metrics,
        },
    )
