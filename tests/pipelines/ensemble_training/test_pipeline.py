"""ensemble_training on synthetic per-branch features joined to a real split manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from deepfake_kedro.datasets import CheckpointStoreDataset
from deepfake_kedro.pipelines.ensemble_training import create_pipeline
from deepfake_kedro.training import TrainingConfig, build_model, predict_proba
from deepfake_kedro.training.inputs import features_for_rows


def branch_table(manifest, dim: int, signal: float, seed: int) -> dict:
    rows = manifest.drop_duplicates("content_hash")
    rng = np.random.default_rng(seed)
    label = (rows["label"] == "fake").to_numpy(dtype=np.float32)
    features = rng.normal(size=(len(rows), dim)).astype(np.float32)
    features[:, 0] += signal * label
    return {
        "content_hash": rows["content_hash"].to_numpy(dtype=str),
        "features": features,
        "identity": np.array(
            json.dumps({"kind": "x", "arch": f"a{dim}", "weights": "none:seed=0"})
        ),
        "backbone": np.array(json.dumps({"kind": "spectral", "image_size": 64})),
    }


def run_pipeline(pipeline, manifest, tmp_path, params: TrainingConfig, datasets: dict) -> dict:
    """Run ``pipeline`` on the manifest, a training state under ``tmp_path``, ``params`` and
    ``datasets``; return every output."""
    outputs = {name: MemoryDataset(copy_mode="assign") for name in pipeline.all_outputs()}
    catalog = DataCatalog(
        {
            "split_manifest": MemoryDataset(manifest),
            "dataset_fingerprint": MemoryDataset({"fingerprint": "f" * 64}),
            "training_state": CheckpointStoreDataset(filepath=str(tmp_path / "state.pt")),
            "params:ensemble_training": MemoryDataset(params),
        }
        | datasets
        | outputs
    )
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


def run(manifest, tmp_path, params: TrainingConfig) -> dict:
    return run_pipeline(create_pipeline(), manifest, tmp_path, params, {
        "resnet.model_input_features": MemoryDataset(branch_table(manifest, 40, 0.0, 1)),
        "clip.model_input_features": MemoryDataset(branch_table(manifest, 8, 1.0, 2)),
        "spectral.model_input_features": MemoryDataset(branch_table(manifest, 12, 4.0, 3)),
    })  # fmt: skip


def test_training_node_outputs_checkpoint_metrics_curves_and_tags(split_manifest, tmp_path):
    params = TrainingConfig(epochs=8, patience=4, batch_size=16, device="cpu")
    out = run(split_manifest, tmp_path, params)

    checkpoint = out["fusion_checkpoint"]
    assert checkpoint["dataset_fingerprint"] == "f" * 64
    # ensemble_training.branches null: every branch of the pipeline, in its order
    assert checkpoint["config"]["branches"] == ["resnet", "clip", "spectral"]
    assert set(checkpoint["backbones"]) == {"resnet", "clip", "spectral"}
    test = split_manifest[split_manifest["split"] == "test"]
    tables = {
        "resnet": branch_table(split_manifest, 40, 0.0, 1),
        "clip": branch_table(split_manifest, 8, 1.0, 2),
        "spectral": branch_table(split_manifest, 12, 4.0, 3),
    }
    scores = predict_proba(
        build_model(checkpoint), features_for_rows(test, tables, checkpoint["config"]["branches"])
    )
    assert scores.shape == (len(test),) and ((scores >= 0) & (scores <= 1)).all()

    metrics = out["training_metrics"]
    assert [m["step"] for m in metrics["val_auc"]] == sorted(m["step"] for m in metrics["val_auc"])
    assert metrics["best_val_auc"]["value"] == pytest.approx(checkpoint["best_metric"])
    assert isinstance(out["training_curves"], Figure)
    assert out["training_tags"]["dataset_fingerprint"] == "f" * 64
    assert (tmp_path / "state.pt").exists()  # saved every epoch, for resume


def test_resume_continues_from_the_saved_state(split_manifest, tmp_path):
    short = TrainingConfig(epochs=3, patience=50, batch_size=16, device="cpu")
    run(split_manifest, tmp_path, short)
    resumed = run(split_manifest, tmp_path, short.model_copy(update={"epochs": 5, "resume": True}))
    steps = [m["step"] for m in resumed["training_metrics"]["val_auc"]]
    assert max(steps) == 5 and len(steps) == 5  # history carried over, 2 more epochs


def test_training_branch_without_features_is_a_clear_error(split_manifest, tmp_path):
    params = TrainingConfig(branches=["resnet", "face"], epochs=2, batch_size=16, device="cpu")
    with pytest.raises(ValueError, match="'face' is in ensemble_training.branches but has no") as info:
        run(split_manifest, tmp_path, params)
    assert "feature_extraction.backbones" in str(info.value)


PIXEL = {"kind": "srm_cnn", "image_size": 64, "options": {"train_crop": 32}}


def run_trainable(manifest, images_root, tmp_path, params: TrainingConfig, backbones: dict,
                  tables: dict, synthetic_fakes=None) -> dict:
    """The pipeline with frozen ``tables`` and the trainable entries of ``backbones``."""
    from deepfake_kedro.io import ImageStore
    from deepfake_kedro.models.backbones import is_trainable
    from deepfake_kedro.training.augmentation import AugmentationConfig
    from deepfake_kedro.training.synthetic import SyntheticFakesConfig

    trainable = [b for b, config in backbones.items() if is_trainable(config)]
    pipeline = create_pipeline(branches=list(tables), trainable=trainable)
    return run_pipeline(pipeline, manifest, tmp_path, params, {
        "raw_images": MemoryDataset(ImageStore(str(images_root)), copy_mode="assign"),
        "params:feature_extraction.augmentation": MemoryDataset(AugmentationConfig(views=0)),
        "params:feature_extraction.backbones": MemoryDataset(backbones),
        "params:feature_extraction.synthetic_fakes": MemoryDataset(
            synthetic_fakes or SyntheticFakesConfig()
        ),
        **{f"{b}.model_input_features": MemoryDataset(t) for b, t in tables.items()},
    })  # fmt: skip


def test_the_node_reads_pixels_only_when_a_branch_is_trainable():
    frozen = create_pipeline(branches=["spectral"])
    assert frozen.inputs() == {
        "split_manifest", "dataset_fingerprint", "training_state", "params:ensemble_training",
        "spectral.model_input_features",
    }  # fmt: skip
    both = create_pipeline(branches=["spectral"], trainable=["pixel"])
    assert {"raw_images", "params:feature_extraction.backbones",
            "params:feature_extraction.augmentation"} <= both.inputs()  # fmt: skip
    assert "pixel.model_input_features" not in both.inputs()


def test_a_pixel_branch_trains_next_to_frozen_features(split_manifest, tiny_demo_dir, tmp_path,
                                                       caplog):
    """Next to a frozen branch whose table has synthetic fakes of the train reals: the pixel
    branch reads the same fakes (made by the same code) for those rows."""
    from deepfake_kedro.training.synthetic import SyntheticFakesConfig

    params = TrainingConfig(epochs=2, patience=4, batch_size=16, device="cpu")
    backbones = {"pixel": PIXEL, "spectral": {"kind": "spectral", "image_size": 64}}
    table = branch_table(split_manifest, 12, 4.0, 3)
    reals = split_manifest[(split_manifest["split"] == "train") & (split_manifest["label"] == "real")]
    hashes = reals["content_hash"].drop_duplicates().to_numpy(dtype=str)
    table |= {
        "synthetic_hash": hashes,
        "synthetic_index": np.zeros(len(hashes), dtype=np.int64),
        "synthetic_features": np.random.default_rng(4).normal(size=(len(hashes), 12)).astype("f4"),
    }
    tables = {"spectral": table}
    with caplog.at_level("INFO"):
        out = run_trainable(split_manifest, tiny_demo_dir, tmp_path, params, backbones, tables,
                            SyntheticFakesConfig(enabled=True))  # fmt: skip
    assert f"+ {len(hashes)} synthetic fakes" in caplog.text

    checkpoint = out["fusion_checkpoint"]
    # Fused in the order of feature_extraction.backbones.
    assert checkpoint["config"]["branches"] == ["pixel", "spectral"]
    assert list(checkpoint["best_branch_state"]) == ["pixel"]
    assert checkpoint["backbones"]["pixel"]["weights"].startswith("trained:")
    assert checkpoint["backbone_configs"]["pixel"]["kind"] == "srm_cnn"
    assert checkpoint["backbones"]["spectral"] == json.loads(str(tables["spectral"]["identity"]))
    assert "pixel=trained:" in out["training_tags"]["weights"]


def test_finetune_trains_a_backbone_and_frozen_leaves_it(split_manifest, tiny_demo_dir, tmp_path):
    """The same ResNet entry: frozen, it is read from its cached features and carries no
    weights; finetune, it is trained here and its (changed) weights travel in the checkpoint."""
    from deepfake_kedro.models import build_extractor

    params = TrainingConfig(epochs=1, batch_size=16, device="cpu")
    resnet = {"kind": "resnet", "arch": "resnet18", "image_size": 32}
    spectral = {"kind": "spectral", "image_size": 64}
    tables = {"spectral": branch_table(split_manifest, 12, 4.0, 3)}

    frozen_tables = {**tables, "resnet": branch_table(split_manifest, 40, 0.0, 1)}
    frozen = run_trainable(split_manifest, tiny_demo_dir, tmp_path / "frozen", params,
                           {"resnet": {**resnet, "train_mode": "frozen"}, "spectral": spectral},
                           frozen_tables)["fusion_checkpoint"]  # fmt: skip
    assert frozen["best_branch_state"] == {}
    assert frozen["backbones"]["resnet"]["weights"] == "none:seed=0"

    tuned = run_trainable(split_manifest, tiny_demo_dir, tmp_path / "tuned", params,
                          {"resnet": {**resnet, "train_mode": "finetune"}, "spectral": spectral},
                          tables)["fusion_checkpoint"]  # fmt: skip
    initial = build_extractor({**resnet, "train_mode": "finetune"}).trained_state()
    weights = tuned["best_branch_state"]["resnet"]
    assert not torch.equal(weights["net.conv1.weight"], initial["net.conv1.weight"])
    assert tuned["backbones"]["resnet"]["weights"].startswith("trained:")
    assert tuned["backbones"]["resnet"]["initial_weights"] == "none:seed=0"


def test_an_unchanged_rerun_reuses_the_finished_training_and_a_changed_one_trains(
    split_manifest, tmp_path, monkeypatch, caplog
):
    from deepfake_kedro.training import loop

    epochs_run: list[int] = []
    real_epoch = loop.train_one_epoch

    def counted(*args, **kwargs):
        epochs_run.append(1)
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", counted)
    params = TrainingConfig(epochs=4, patience=50, batch_size=16, device="cpu")
    first = run(split_manifest, tmp_path, params)
    assert len(epochs_run) == 4

    with caplog.at_level("INFO", logger="deepfake_kedro"):
        again = run(split_manifest, tmp_path, params)
    assert len(epochs_run) == 4  # nothing retrained
    assert "reusing its result, nothing is retrained" in caplog.text
    for key in ("best_state", "history", "best_metric", "best_epoch"):
        assert str(again["fusion_checkpoint"][key]) == str(first["fusion_checkpoint"][key]), key
    assert again["training_metrics"] == first["training_metrics"]

    # reuse: false trains anyway; another parameter or other features train too.
    run(split_manifest, tmp_path, params.model_copy(update={"reuse": False}))
    assert len(epochs_run) == 8
    run(split_manifest, tmp_path, params.model_copy(update={"learning_rate": 2e-3}))
    assert len(epochs_run) == 12
    changed = split_manifest.copy()
    changed.loc[changed.index[0], "label"] = (
        "real" if changed.loc[changed.index[0], "label"] == "fake" else "fake"
    )
    run(changed, tmp_path, params.model_copy(update={"learning_rate": 2e-3}))
    assert len(epochs_run) == 16


def test_an_interrupted_training_is_not_reused(split_manifest, tmp_path, monkeypatch):
    """A state saved mid-training (the run crashed) has the same digest but is not finished:
    the next run trains from the start (resume: true would continue it)."""
    from deepfake_kedro.training import loop

    params = TrainingConfig(epochs=3, patience=50, batch_size=16, device="cpu")
    calls = {"n": 0}
    real_epoch = loop.train_one_epoch

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the machine went away")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", interrupted)
    with pytest.raises(RuntimeError, match="the machine went away"):
        run(split_manifest, tmp_path, params)
    calls["n"] = 10  # no more interruptions
    out = run(split_manifest, tmp_path, params)
    assert [m["step"] for m in out["training_metrics"]["val_auc"]] == [1, 2, 3]
    assert calls["n"] == 13  # three epochs trained anew
