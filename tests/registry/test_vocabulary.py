"""The MLflow vocabulary has one home, and versions tagged with an older name still read."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
from registry_helpers import NAME, PASSED
from registry_helpers import logged_run as _run

from deepfake_kedro.hooks import MlflowLineageHooks
from deepfake_kedro.pipelines.registration.nodes import prepare_registration
from deepfake_kedro.registry import vocabulary
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import register_model
from deepfake_kedro.retraining.champion import load_champion

SRC = Path(vocabulary.__file__).resolve().parents[1]
# Names that are the role, not the MLflow alias: the retraining pipeline's `champion` input
# and dataset field, and the name of the retraining check about the champion.
NOT_THE_ALIAS = {
    "pipelines/retraining/nodes.py": "the retraining champion dataset's field",
    "pipelines/retraining/pipeline.py": "the node input named champion",
    "retraining/checks.py": "the name of the champion check",
}
FINGERPRINT = {"fingerprint": "f" * 64, "n_images": 60, "newest_captured_at": "2026-01-29T09:56:53Z"}
NEWEST = datetime(2026, 1, 29, 9, 56, 53, tzinfo=UTC)


def _alias_literals(path: Path) -> list[tuple[int, str]]:
    """Non-docstring string literals of ``path`` that are an alias name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and node.value in vocabulary.ALIASES
        and id(node) not in docstrings
    ]


def test_alias_names_are_written_only_in_the_vocabulary():
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative == "registry/vocabulary.py" or relative in NOT_THE_ALIAS:
            continue
        if literals := _alias_literals(path):
            found[relative] = literals
    assert found == {}, (
        "alias names written as literals; import them from deepfake_kedro.registry.vocabulary"
    )
    assert _alias_literals(SRC / "registry/vocabulary.py"), "the scan must see the vocabulary's"


def test_run_and_version_carry_one_name_for_the_data_lineage(mlflow_tracking):
    with mlflow.start_run() as run:
        MlflowLineageHooks().after_dataset_saved("dataset_fingerprint", FINGERPRINT)
    run_tags = mlflow.get_run(run.info.run_id).data.tags
    request = prepare_registration(
        PASSED,
        {"metrics": {"auc": 0.9}, "robustness": {"summary": {}}, "fairness": {}, "verdict": PASSED},
        FINGERPRINT,
        {"backbones": {}},
        {"available": False},
        RegistryConfig(),
    )
    lineage = {vocabulary.TAG_FINGERPRINT, vocabulary.TAG_N_IMAGES, vocabulary.TAG_NEWEST_CAPTURED_AT}
    assert lineage <= set(run_tags) and lineage <= set(request["tags"])
    assert run_tags[vocabulary.TAG_NEWEST_CAPTURED_AT] == FINGERPRINT["newest_captured_at"]
    assert request["tags"][vocabulary.TAG_NEWEST_CAPTURED_AT] == FINGERPRINT["newest_captured_at"]
    assert vocabulary.LEGACY_TAG_NEWEST_CAPTURED_AT not in request["tags"]


@pytest.mark.parametrize(
    "tag", [vocabulary.TAG_NEWEST_CAPTURED_AT, vocabulary.LEGACY_TAG_NEWEST_CAPTURED_AT]
)
def test_retraining_reads_the_newest_capture_under_either_name(client, tag):
    """A version registered before the names were unified carries data_newest_captured_at."""
    run_id = _run(client)  # its run has no lineage tags: only the version tag can answer
    register_model(
        client,
        RegistryConfig(),
        model_uri=f"runs:/{run_id}/model",
        verdict=PASSED,
        metrics={"test_auc": 0.95},
        tags={vocabulary.TAG_FINGERPRINT: "fp-a", tag: FINGERPRINT["newest_captured_at"]},
    )
    info = load_champion(client, NAME)
    assert info is not None and info.version == "1"
    assert info.newest_captured_at == NEWEST


def test_registry_uris_round_trip():
    assert vocabulary.parse_registry_uri(vocabulary.alias_uri(NAME, vocabulary.CHAMPION)) == (
        NAME,
        vocabulary.CHAMPION,
        None,
    )
    assert vocabulary.parse_registry_uri(vocabulary.version_uri(NAME, 3)) == (NAME, None, "3")
    with pytest.raises(ValueError, match=r"models:/<name>@<alias>"):
        vocabulary.parse_registry_uri("runs:/abc/model")
