"""The pipeline benchmark's log parsing: node seconds from a real ``kedro run`` log format."""

from __future__ import annotations

import pytest

from benchmarks.pipeline import node_seconds

LOG = """\
2026-12-02 02:50:48,490 - kedro.pipeline.node - INFO - Running node: split_dataset_node: split_dataset([validated_manifest;params:data_ingestion]) -> [split_manifest]
2026-12-02 02:50:48,571 - kedro.runner.sequential_runner - INFO - Completed node: split_dataset_node
2026-12-02 02:50:48,644 - kedro.pipeline.node - INFO - Running node: extract_features_node: extract_features([split_manifest;raw_images;clip.feature_cache]) -> [clip.features]
2026-12-02 02:50:52,799 - deepfake_kedro.features.engine - INFO - clip: 1000 manifest rows, Running node: not a node line
2026-12-02 02:56:28,010 - kedro.runner.sequential_runner - INFO - Completed node: clip.extract_features_node
2026-12-02 02:56:28,277 - kedro.pipeline.node - INFO - Running node: extract_features_node: extract_features([split_manifest;raw_images;resnet.feature_cache]) -> [resnet.features]
2026-12-02 02:58:00,277 - kedro.runner.sequential_runner - INFO - Completed node: resnet.extract_features_node
2026-12-02 02:58:01,000 - kedro.pipeline.node - INFO - Running node: train_ensemble_node: train_ensemble([split_manifest]) -> [fusion_checkpoint]
"""


def test_node_seconds_names_namespaced_nodes_and_skips_unfinished_ones():
    """Kedro logs the start under the short name and the end under the namespaced one."""
    seconds = node_seconds(LOG)
    assert seconds["split_dataset_node"] == pytest.approx(0.081)
    assert seconds["clip.extract_features_node"] == pytest.approx(339.366)
    assert seconds["resnet.extract_features_node"] == pytest.approx(92.0)
    assert "train_ensemble_node" not in seconds  # started, never completed (the run failed)
    assert set(seconds) == {
        "split_dataset_node",
        "clip.extract_features_node",
        "resnet.extract_features_node",
    }
