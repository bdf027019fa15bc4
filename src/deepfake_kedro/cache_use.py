"""Which nodes of a run the caches served: one summary line when the run ends.

The code that consults a cache (feature extraction, scoring, training reuse) says how much of
its work the cache served in the ``extra`` of the log line it writes anyway
(``logger.info(..., extra=cache_use(served, computed, "images"))``); nodes stay pure.
:class:`CacheUseHooks` collects those records per node while a pipeline runs and logs, at the
end, which nodes were served from cache entirely, which in part, and which computed everything
they consulted a cache for. A warm re-run then says in one line that it redid nothing.

Records are attributed to the node running in the same thread (sequential and thread runners);
nodes run in other processes (``ParallelRunner``) are not seen.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from kedro.framework.hooks import hook_impl

CACHE_USE = "cache_use"
logger = logging.getLogger(__name__)


def cache_use(served: int, computed: int, unit: str) -> dict[str, Any]:
    """The ``extra`` of a log record saying how much of a node's work a cache served.

    Args:
        served: Items read from the cache.
        computed: Items computed (and written to the cache).
        unit: What an item is (``images``, ``models``).
    """
    return {CACHE_USE: {"served": int(served), "computed": int(computed), "unit": unit}}


class _Collector(logging.Handler):
    """Sums the cache use of the log records of each node."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()
        self.uses: dict[str, dict[str, list[int]]] = defaultdict(
            lambda: defaultdict(lambda: [0, 0])
        )
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        use = getattr(record, CACHE_USE, None)
        node = getattr(self.local, "node", None)
        if not isinstance(use, dict) or node is None:
            return
        with self._guard:
            totals = self.uses[node][str(use.get("unit", "items"))]
            totals[0] += int(use.get("served", 0))
            totals[1] += int(use.get("computed", 0))


def summary(uses: dict[str, dict[str, list[int]]]) -> str | None:
    """One line: the nodes served from cache entirely, in part, and not at all."""
    groups: dict[str, list[str]] = {"served": [], "partly": [], "computed": []}
    for node, units in uses.items():
        served = sum(s for s, _ in units.values())
        computed = sum(c for _, c in units.values())
        counts = ", ".join(f"{s}/{s + c} {unit}" for unit, (s, c) in sorted(units.items()) if s + c)
        key = "served" if computed == 0 and served else "computed" if served == 0 else "partly"
        groups[key].append(f"{node} ({counts or 'nothing to do'})")
    parts = [
        f"{title}: {'; '.join(sorted(groups[key]))}"
        for key, title in (
            ("served", "served from cache"),
            ("partly", "partly cached"),
            ("computed", "computed (not in cache)"),
        )
        if groups[key]
    ]
    return "Cache use of this run: " + " | ".join(parts) if parts else None


class CacheUseHooks:
    """Logs, when a run ends, which nodes the feature cache and training reuse served."""

    def __init__(self) -> None:
        self._collector: _Collector | None = None

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._detach()
        self._collector = _Collector()
        logging.getLogger("deepfake_kedro").addHandler(self._collector)

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        if self._collector is not None:
            self._collector.local.node = node.name

    @hook_impl
    def after_node_run(self) -> None:
        if self._collector is not None:
            self._collector.local.node = None

    @hook_impl
    def after_pipeline_run(self) -> None:
        collector = self._detach()
        line = summary(collector.uses) if collector is not None else None
        if line:
            logger.info(line)

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._detach()

    def _detach(self) -> _Collector | None:
        collector, self._collector = self._collector, None
        if collector is not None:
            logging.getLogger("deepfake_kedro").removeHandler(collector)
        return collector
