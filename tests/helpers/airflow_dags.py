"""Real Apache Airflow for the DAG tests: a throw-away AIRFLOW_HOME, the `airflow` CLI, a DagBag.

`AirflowHome.create(...)` writes the project copy's DAGs with `kedro airflow create` (the
project's template), migrates a SQLite metadata database in a temporary AIRFLOW_HOME and
serialises the DAGs, so `airflow dags test`, `airflow dags trigger` and `airflow tasks test`
work. Every `airflow` command runs in a folder outside the project (`cwd`), as a scheduler's
worker would: the project is found through DEEPFAKE_KEDRO_PROJECT_PATH only.

Airflow is imported only in subprocesses (it reads its configuration at import time); run as
a script, this file prints a JSON summary of the DagBag of a DAG folder (import errors, and per
DAG its settings, tasks, edges, mapped tasks and a topological order of its tasks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AIRFLOW = Path(sys.executable).with_name("airflow")
TEMPLATE = ["--group-by", "memory", "--jinja-file", "airflow/dag_template.j2"]


@dataclass
class AirflowHome:
    """An AIRFLOW_HOME with a SQLite database, and the environment its commands run with."""

    home: Path
    dags: Path
    cwd: Path
    environ: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        project: Path,
        home: Path,
        environ: dict[str, str],
        *,
        pipelines: str = "retraining,__default__",
        create_args: tuple[str, ...] = (),
    ) -> AirflowHome:
        """`kedro airflow create` in ``project``, then `airflow db migrate` and `dags
        reserialize` in ``home`` (which also holds the folder the commands run in)."""
        from kedro_project import kedro

        dags = project / "airflow" / "dags"
        kedro(
            project, "airflow", "create", "--pipelines", pipelines, *TEMPLATE,
            "--target-dir", str(dags), *create_args, environ=environ,
        )  # fmt: skip
        cwd = home / "elsewhere"
        cwd.mkdir(parents=True)
        airflow = cls(
            home,
            dags,
            cwd,
            {
                **environ,
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "DEEPFAKE_KEDRO_PROJECT_PATH": str(project),
            },
        )
        airflow.cli("db", "migrate")
        airflow.cli("dags", "reserialize")
        return airflow

    def cli(
        self, *args: str, check: bool = True, timeout: int = 900
    ) -> subprocess.CompletedProcess:
        """``airflow <args>`` from :attr:`cwd`; raise with its output if it fails."""
        result = subprocess.run(
            [str(AIRFLOW), *args], cwd=self.cwd, env=self.environ,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
            )
        return result

    def json(self, *args: str) -> Any:
        """The JSON output of ``airflow <args> -o json`` (its last line: logs may come first)."""
        return json.loads(self.cli(*args, "-o", "json").stdout.strip().splitlines()[-1])

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str]:
        """``{(task_id, map_index): state}`` of a DAG run's task instances (map_index -1: not
        mapped; ``""``: not run). A mapped task's placeholder, once expanded, is left out."""
        rows = self.json("tasks", "states-for-dag-run", dag_id, run_id)
        return {
            (r["task_id"], int(r["map_index"]) if r.get("map_index") not in (None, "") else -1): (
                r["state"] or ""
            )
            for r in rows
            if r["state"] != "removed"
        }

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, newest first."""
        return self.json("dags", "list-runs", dag_id)

    def dagbag(self) -> dict[str, Any]:
        """The summary this file prints as a script, of :attr:`dags`."""
        result = subprocess.run(
            [sys.executable, __file__, str(self.dags)], cwd=self.cwd, env=self.environ,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"DagBag summary failed:\n{result.stdout}\n{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def _topological(upstream: dict[str, set[str]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(upstream):
        ready = sorted(t for t, ups in upstream.items() if t not in done and ups <= done)
        if not ready:
            raise AssertionError(f"the DAG has a cycle among {set(upstream) - done}")
        order += ready
        done |= set(ready)
    return order


def _summary(folder: str) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    bag = DagBag(dag_folder=folder)
    dags = {}
    for dag_id, dag in bag.dags.items():
        upstream = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
        dags[dag_id] = {
            "fileloc": dag.fileloc,
            "max_active_runs": dag.max_active_runs,
            "schedule": dag.schedule if dag.schedule is None else str(dag.schedule),
            "catchup": dag.catchup,
            "tasks": sorted(upstream),
            "edges": sorted([u, t] for t, ups in upstream.items() for u in ups),
            "mapped": sorted(t.task_id for t in dag.tasks if isinstance(t, MappedOperator)),
            "operators": {
                t.task_id: (t.operator_class if isinstance(t, MappedOperator) else type(t)).__name__
                for t in dag.tasks
            },
            "order": _topological(upstream),
        }
    return {"import_errors": dict(bag.import_errors), "dags": dags}


if __name__ == "__main__":
    print(json.dumps(_summary(sys.argv[1])))  # noqa: T201 (the summary is this script's output)
