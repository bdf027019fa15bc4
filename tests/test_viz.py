"""`kedro viz build`: the static Kedro-Viz site lists every pipeline, its tags and namespaces.

Runs the real CLI in a copy of the project (kedro_project.make_project, as tests/test_run.py
does) with no parameter overrides and a three-row raw manifest, so that a dataset preview can be
checked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro_project import ROOT, kedro, make_project

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
    project = make_project(tmp_path_factory.mktemp("viz_project"), None, data_layers=False)
    (project / "data" / "01_raw").mkdir(parents=True)
    (project / "data" / "01_raw" / "manifest.csv").write_text(MANIFEST)

    result = kedro(project, "viz", "build", "--include-previews")
    output = result.stdout + result.stderr
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
