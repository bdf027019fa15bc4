"""The notebooks in notebooks/ run headless, top to bottom, on a tiny project (so they never rot).

A copy of the project (kedro_project.make_project, as in tests/test_run.py) with tiny data and
backbones, and a gate that any model passes, so that `kedro run` registers a champion. Before
there is data, a training run or a champion, each notebook must stop at its prerequisite cell
with the command that fixes it.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from kedro_project import OPEN_GATE, ROOT, env, kedro, make_project, tiny_parameters
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAMETERS = tiny_parameters(OPEN_GATE, {
    "validation": {"bootstrap_samples": 200, "robustness": {"enabled": False}},
})
pytestmark = pytest.mark.slow


def environment() -> dict[str, str]:
    environ = env()
    environ.pop("MPLBACKEND", None)  # the kernel's inline backend puts the figures in the outputs
    return environ


def execute(project: Path, name: str) -> nbformat.NotebookNode:
    """Run a notebook as `kedro jupyter lab` would: kernel in the project's notebooks/ folder."""
    notebook = nbformat.read(project / "notebooks" / name, as_version=4)
    # "python3" resolves to this interpreter (the venv's) in jupyter_client.
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(project / "notebooks")}})
    client.execute(env=environment())
    return notebook


def in_parallel(func, project: Path, names: list[str]) -> list:
    """One kernel per notebook, side by side: most of a notebook's time is kernel start-up."""
    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(lambda name: func(project, name), names))


def prerequisite_error(project: Path, name: str) -> str:
    with pytest.raises(CellExecutionError) as error:
        execute(project, name)
    assert error.value.ename == "MissingPrerequisite", error.value
    return error.value.evalue


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """An empty copy of the project: configuration, notebooks, no data, no MLflow store."""
    path = make_project(tmp_path_factory.mktemp("notebook_project"), PARAMETERS, data_layers=False)
    (path / "notebooks").mkdir()
    for notebook in NOTEBOOKS:
        shutil.copy(notebook, path / "notebooks" / notebook.name)
    return path


def test_notebooks_are_committed_without_outputs():
    assert [n.name for n in NOTEBOOKS] == [
        "01_explore_data.ipynb", "02_training_run_and_validation.ipynb",
        "03_score_your_images.ipynb",
    ]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code[0].source.strip() == "%load_ext kedro.ipython"
        assert all(not c.outputs and c.execution_count is None for c in code), path.name


def test_each_notebook_names_its_missing_prerequisite(project):
    # The order matters: each step creates the previous notebook's prerequisite.
    assert "kedro run --pipelines demo_data" in prerequisite_error(project, NOTEBOOKS[0].name)
    # Data, and an MLflow run that trained nothing.
    kedro(project, "run", "--pipelines", "demo_data", environ=environment())
    no_run, no_champion = in_parallel(prerequisite_error, project,
                                      [NOTEBOOKS[1].name, NOTEBOOKS[2].name])
    assert "No training run" in no_run and "`kedro run`" in no_run
    assert "No champion" in no_champion and "`kedro run`" in no_champion


def test_notebooks_run_end_to_end_on_a_trained_project(project):
    if not (project / "data" / "01_raw" / "manifest.csv").is_file():
        kedro(project, "run", "--pipelines", "demo_data", environ=environment())
    # Trains, validates (gate relaxed) and registers the champion.
    kedro(project, "run", environ=environment())

    explore, run, score = in_parallel(execute, project, [n.name for n in NOTEBOOKS])
    assert "40 images" in _text(explore)
    assert _images(explore) >= 2  # the sample grid and one source's family

    text = _text(run)
    assert "gate PASSED" in text and "deepfake-detector version 1" in text
    assert "champion" in text
    assert "validation_report" in text or "<iframe srcdoc=" in _html(run)

    assert "champion: deepfake-detector version 1" in _text(score)
    assert "fake_probability" in _html(score)
    assert _images(score) >= 1  # thumbnails


def _outputs(notebook):
    for cell in notebook.cells:
        yield from cell.get("outputs", [])


def _text(notebook) -> str:
    return "".join(o.get("text", "") for o in _outputs(notebook) if o.output_type == "stream")


def _html(notebook) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in _outputs(notebook))


def _images(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(notebook))
