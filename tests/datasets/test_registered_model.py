"""Registry URIs and the registry-backed datasets against a real SQLite MLflow store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from kedro.io import DatasetError
from mlflow import MlflowClient

from deepfake_kedro.datasets import ChampionCheckpointDataset, RegisteredModelDataset
from deepfake_kedro.datasets.registered_model import parse_registry_uri


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/deepfake-detector@champion", ("deepfake-detector", "champion", None)),
        ("models:/deepfake-detector@previous-champion", ("deepfake-detector", "previous-champion", None)),
        ("models:/deepfake-detector/3", ("deepfake-detector", None, "3")),
        ("models:/deepfake-detector/12", ("deepfake-detector", None, "12")),
    ],
)
def test_parse_registry_uri(uri, parsed):
    assert parse_registry_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "deepfake-detector@champion",
        "runs:/0123/model",
        "models:/",
        "models:/deepfake-detector",
        "models:/deepfake-detector@",
        "models:/@champion",
        "models:/deepfake-detector/latest",
        "models:/deepfake-detector/",
        "models:/deepfake-detector/3@champion",
        "models:/m-0123456789abcdef",  # a logged model, not a registered one
    ],
)
def test_bad_registry_uris_name_the_accepted_forms(uri):
    with pytest.raises(ValueError, match=r"models:/<name>@<alias>.*models:/<name>/<version>"):
        parse_registry_uri(uri)


@pytest.mark.parametrize("dataset", [RegisteredModelDataset, ChampionCheckpointDataset])
def test_datasets_reject_a_bad_uri_when_the_catalog_is_built(dataset):
    with pytest.raises(ValueError, match="is not a registered model URI"):
        dataset(model_uri="deepfake-detector")


@pytest.mark.parametrize("dataset", [RegisteredModelDataset, ChampionCheckpointDataset])
def test_datasets_are_read_only(dataset):
    with pytest.raises(DatasetError, match="read-only"):
        dataset(model_uri="models:/m@champion").save({"anything": 1})


# ------------------------------------------------------------------ against a real store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowClient]:
    """One migrated SQLite store for the module (creating one takes seconds); each test uses
    its own model name. The datasets find it through the active tracking URI."""
    root: Path = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_experiment("tests", artifact_location=(root / "artifacts").as_uri())
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield client
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def name() -> str:
    return f"detector-{uuid.uuid4().hex[:8]}"


def add_version(client: MlflowClient, name: str) -> str:
    """A version whose source is a tiny run artifact (enough for alias and lookup tests)."""
    experiment = client.get_experiment_by_name("tests").experiment_id
    run_id = client.create_run(experiment).info.run_id
    client.set_terminated(run_id)
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException:
        pass  # already there
    return str(client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version)


def test_unknown_model_says_how_to_get_one(store, name):
    with pytest.raises(DatasetError) as info:
        RegisteredModelDataset(model_uri=f"models:/{name}@champion").load()
    message = str(info.value)
    assert f"no alias 'champion' of registered model '{name}'" in message
    assert "`kedro models deploy <version>`" in message
    assert "`kedro models list`" in message


def test_unknown_alias_of_a_registered_model(store, name):
    add_version(store, name)
    with pytest.raises(DatasetError, match=r"no alias 'champion'.*`kedro models deploy"):
        RegisteredModelDataset(model_uri=f"models:/{name}@champion").load()


def test_unknown_version_of_a_registered_model(store, name):
    add_version(store, name)
    with pytest.raises(DatasetError, match=rf"no version 7 of registered model '{name}'"):
        RegisteredModelDataset(model_uri=f"models:/{name}/7").load()


def test_champion_checkpoint_is_none_when_the_model_is_not_registered(store, name):
    assert ChampionCheckpointDataset(model_uri=f"models:/{name}@champion").load() is None


def test_champion_checkpoint_is_none_without_a_champion(store, name):
    add_version(store, name)
    store.set_registered_model_alias(name, "challenger", "1")
    assert ChampionCheckpointDataset(model_uri=f"models:/{name}@champion").load() is None


def test_champion_checkpoint_is_none_for_a_registered_model_without_versions(store, name):
    store.create_registered_model(name)
    assert ChampionCheckpointDataset(model_uri=f"models:/{name}@champion").load() is None
