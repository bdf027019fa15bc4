"""`kedro viz build`: the static Kedro-Viz site lists every pipeline, its tags and namespaces.

Runs the real CLI in a copy of the project's configuration (as tests/test_run.py does), with a
three-row raw manifest so that a dataset preview can be checked too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

MANIFEST = """image_path,label,source_id,manipulation
images/a.png,real,a,none
images/b.png,fake,a,self_blend
images/c.png,real,c,none
"""


def registered_pipelines() -> set[str]:
    folders = {p.name for p in (ROOT / "src/deepfake_kedro/pipelines").iterdir()
               if (p / "pipeline.py").is_file()}
    return folders | {"__default__", "inference_model"}


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("viz_project")
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(ROOT / ".telemetry", project / ".telemetry")
    (project / "src").mkdir()  # the package itself is installed (editable) in the venv
    (project / "data" / "01_raw").mkdir(parents=True)
    (project / "data" / "01_raw" / "manifest.csv").write_text(MANIFEST)

    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    env.pop("KEDRO_LOGGING_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build", "--include-previews"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"kedro viz build failed:\n{output}"
    assert "circular dependency" not in output, f"Kedro-Viz turned the layers off:\n{output}"
    return project / "build"


def read(build: Path, path: str) -> dict:
    return json.loads((build / "api" / path).read_text())


def test_site_lists_every_registered_pipeline(build):
    assert (build / "index.html").is_file()
    main = read(build, "main")
    listed = {p["id"] for p in main["pipelines"]}
    assert registered_pipelines() <= listed
    for name in registered_pipelines():
        assert read(build, f"pipelines/{name}")["selected_pipeline"] == name


def test_tags_namespaces_and_layers(build):
    main = read(build, "main")
    assert {"training", "inference"} <= {t["id"] for t in main["tags"]}
    assert {"resnet", "clip", "spectral"} <= set(main["modular_pipelines"])
    assert main["layers"][:3] == ["raw", "intermediate", "primary"]
    assert main["layers"][-1] == "reporting"

    # Kedro-Viz shows a namespaced node by its short name inside its namespace's box.
    tasks = {(n["name"], tuple(n["modular_pipelines"] or ())) for n in main["nodes"]
             if n["type"] == "task"}
    assert {("validate_raw_data_node", ()), ("train_ensemble_node", ()),
            ("extract_features_node", ("resnet",)), ("collect_features_node", ("clip",))} <= tasks
    inference = read(build, "pipelines/inference_model")
    assert {"read_images_node", "score_images_node"} <= {
        n["name"] for n in inference["nodes"] if n["type"] == "task"}


def test_pandas_datasets_are_previewed(build):
    main = read(build, "main")
    node_id = next(n["id"] for n in main["nodes"] if n["name"] == "raw_manifest")
    preview = read(build, f"nodes/{node_id}")["preview"]
    assert preview["columns"] == ["image_path", "label", "source_id", "manipulation"]
    assert len(preview["data"]) == 3
