"""The end-of-run line that says which nodes the caches served."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

from deepfake_kedro.cache_use import CacheUseHooks, cache_use, summary

engine_logger = logging.getLogger("deepfake_kedro.features.engine")


def _run(hooks: CacheUseHooks, nodes: dict[str, list[tuple[int, int, str]]]) -> None:
    hooks.before_pipeline_run()
    for name, uses in nodes.items():
        hooks.before_node_run(SimpleNamespace(name=name))
        for served, computed, unit in uses:
            engine_logger.info("x", extra=cache_use(served, computed, unit))
        engine_logger.info("a line without cache use")
        hooks.after_node_run()
    engine_logger.info("outside any node", extra=cache_use(5, 5, "images"))
    hooks.after_pipeline_run()


def test_a_run_ends_with_one_line_naming_served_partly_and_computed_nodes(caplog):
    caplog.set_level(logging.INFO, logger="deepfake_kedro")
    _run(
        CacheUseHooks(),
        {
            "resnet.extract_features_node": [(1000, 0, "images"), (1400, 0, "images")],
            "clip.extract_features_node": [(900, 100, "images")],
            "train_ensemble_node": [(1, 0, "models")],
            "evaluate_robustness_node": [(0, 2850, "images")],
            "report_validation_node": [],
        },
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "deepfake_kedro.cache_use"]
    assert lines == [
        "Cache use of this run: served from cache: resnet.extract_features_node "
        "(2400/2400 images); train_ensemble_node (1/1 models) | partly cached: "
        "clip.extract_features_node (900/1000 images) | computed (not in cache): "
        "evaluate_robustness_node (0/2850 images)"
    ]


def test_nothing_consulted_no_line_and_the_handler_is_removed(caplog):
    caplog.set_level(logging.INFO, logger="deepfake_kedro")
    hooks = CacheUseHooks()
    before = list(logging.getLogger("deepfake_kedro").handlers)
    _run(hooks, {"split_dataset_node": []})
    assert not [r for r in caplog.records if r.name == "deepfake_kedro.cache_use"]
    assert logging.getLogger("deepfake_kedro").handlers == before
    hooks.before_pipeline_run()
    hooks.on_pipeline_error()  # a failed run detaches too
    assert logging.getLogger("deepfake_kedro").handlers == before


def test_records_go_to_the_node_of_their_own_thread(caplog):
    caplog.set_level(logging.INFO, logger="deepfake_kedro")
    hooks = CacheUseHooks()
    hooks.before_pipeline_run()
    collector = hooks._collector

    def node(name: str, served: int) -> None:
        hooks.before_node_run(SimpleNamespace(name=name))
        engine_logger.info("x", extra=cache_use(served, 0, "images"))
        hooks.after_node_run()

    threads = [threading.Thread(target=node, args=(f"n{i}", i + 1)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hooks.after_pipeline_run()
    assert {n: u["images"][0] for n, u in collector.uses.items()} == {
        "n0": 1,
        "n1": 2,
        "n2": 3,
        "n3": 4,
    }
    assert summary({}) is None
