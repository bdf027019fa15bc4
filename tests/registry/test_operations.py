"""Registry operations against a real SQLite MLflow store (tmp_path), real runs, no mocks."""

from __future__ import annotations

import json
import logging

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from registry_helpers import NAME, PASSED
from registry_helpers import aliases as _aliases
from registry_helpers import experiment_id as _experiment_id
from registry_helpers import logged_run as _run
from registry_helpers import register as _register

from deepfake_kedro.registry import operations
from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.operations import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    cleanup,
    deploy,
    format_versions,
    list_versions,
    promote_if_better,
    register_model,
    rollback,
)

FAILED = {
    "passed": False,
    "failed": ["test AUC 0.8100 is below validation_threshold 0.95"],
    "summary": "FAILED 1 of 7 checks",
}


def _tags(client: MlflowClient, version: str) -> dict[str, str]:
    return client.get_model_version(NAME, version).tags


def _failed_version(client: MlflowClient) -> str:
    """A version registered outside register_model that did not pass validation."""
    run_id = _run(client)
    version = client.create_model_version(
        NAME,
        f"runs:/{run_id}/model",
        run_id=run_id,
        tags={"validation_passed": "false", "validation_failed": FAILED["failed"][0]},
    ).version
    return str(version)


def test_failed_verdict_registers_nothing(client, caplog):
    with caplog.at_level(logging.WARNING, logger=operations.__name__):
        result = _register(client, RegistryConfig(), 0.81, verdict=FAILED)
    assert not result.registered and result.version is None and not result.promoted
    assert "validation failed" in result.reason and "below validation_threshold" in result.reason
    assert result.reason in caplog.text
    assert client.search_model_versions(f"name = '{NAME}'") == []


def test_bad_verdict_fails_loudly(client):
    with pytest.raises(ValueError, match="boolean 'passed'"):
        _register(client, RegistryConfig(), 0.9, verdict={"passed": "yes"})


def test_first_version_becomes_champion_and_keeps_challenger(client):
    result = _register(client, RegistryConfig(), 0.95)
    assert result.registered and result.promoted
    assert (result.version, result.champion) == ("1", "1")
    assert _aliases(client) == {CHAMPION: "1", CHALLENGER: "1"}
    tags = _tags(client, "1")
    assert tags["validation_passed"] == "true"
    assert float(tags["gate.test_auc"]) == 0.95
    assert tags["dataset_fingerprint"] == "fp-a" and tags["git_commit"] == "abc1234"
    assert tags["backbones"] == "resnet50,clip" and "validation_report" in tags
    assert tags["champion_via"] == "auto" and "champion_from" in tags


@pytest.mark.parametrize("uri_form", ["runs", "logged_model"])
def test_registered_pyfunc_model_loads_from_champion_alias(client, uri_form):
    class Identity(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    with mlflow.start_run(experiment_id=_experiment_id(client)) as run:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Identity(), pip_requirements=["mlflow"]
        )
    uri = f"runs:/{run.info.run_id}/model" if uri_form == "runs" else info.model_uri
    result = register_model(
        None,  # the active tracking URI
        {"model_name": NAME},
        model_uri=uri,
        verdict=PASSED,
        metrics={"test_auc": 0.97},
        tags={"dataset_fingerprint": "fp-a"},
    )
    assert result.promoted
    assert client.get_model_version(NAME, "1").run_id == run.info.run_id
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    pd.testing.assert_frame_equal(model.predict(frame), frame)


def test_worse_challenger_stays_challenger(client):
    config = RegistryConfig()
    _register(client, config, 0.95)
    result = _register(client, config, 0.94)
    assert result.registered and not result.promoted and result.champion == "1"
    assert "not better by the margin" in result.reason
    assert _aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}


def test_better_challenger_needs_the_margin(client):
    config = RegistryConfig(promotion_margin=0.02)
    _register(client, config, 0.95)
    within_margin = _register(client, config, 0.96)
    assert not within_margin.promoted and within_margin.champion == "1"
    beyond = _register(client, config, 0.97)  # exactly the margin counts (float noise aside)
    assert beyond.promoted and beyond.champion == "3"
    assert _aliases(client) == {CHAMPION: "3", CHALLENGER: "3", PREVIOUS_CHAMPION: "1"}
    assert "champion_until" in _tags(client, "1")


def test_lower_is_better_metric(client):
    config = RegistryConfig(promotion_metric="test_eer", greater_is_better=False)
    _register(client, config, 0.90)  # eer 0.10
    result = _register(client, config, 0.95)  # eer 0.05
    assert result.promoted and result.champion == "2"


def test_different_test_data_is_not_compared(client, caplog):
    config = RegistryConfig()
    _register(client, config, 0.90, fingerprint="fp-a")
    with caplog.at_level(logging.WARNING, logger=operations.__name__):
        result = _register(client, config, 0.99, fingerprint="fp-b")
    assert not result.promoted and result.champion == "1"
    assert "dataset_fingerprint" in result.reason and "allow_different_test_data" in result.reason
    assert "fp-b" in caplog.text
    promoted, reason = promote_if_better(
        client, RegistryConfig(allow_different_test_data=True), result.version
    )
    assert promoted and _aliases(client)[CHAMPION] == "2", reason


def test_deploy_refuses_failed_validation_unless_forced(client):
    config = RegistryConfig()
    _register(client, config, 0.95)
    bad = _failed_version(client)
    with pytest.raises(ValueError, match=rf"version {bad}.*below validation_threshold.*force"):
        deploy(client, config, bad)
    assert _aliases(client)[CHAMPION] == "1"
    assert not promote_if_better(client, config, bad)[0]

    message = deploy(client, config, bad, force=True)
    assert "forced" in message
    assert _aliases(client)[CHAMPION] == bad and _aliases(client)[PREVIOUS_CHAMPION] == "1"
    assert _tags(client, bad)["forced_deploy"] == "true"
    assert _tags(client, bad)["champion_via"] == "deploy"


def test_deploy_unknown_version_names_existing_ones(client):
    _register(client, RegistryConfig(), 0.95)
    with pytest.raises(ValueError, match="no version 7; existing versions: 1"):
        deploy(client, RegistryConfig(), "7")


def test_rollback_swaps_and_second_rollback_undoes(client):
    config = RegistryConfig()
    _register(client, config, 0.90)
    _register(client, config, 0.95)
    assert _aliases(client)[CHAMPION] == "2"

    rollback(client, config)
    aliases = _aliases(client)
    assert (aliases[CHAMPION], aliases[PREVIOUS_CHAMPION]) == ("1", "2")
    assert _tags(client, "2")["rolled_back"] == "true"
    assert _tags(client, "1")["champion_via"] == "rollback"

    rollback(client, config)
    aliases = _aliases(client)
    assert (aliases[CHAMPION], aliases[PREVIOUS_CHAMPION]) == ("2", "1")
    assert "rolled_back" not in _tags(client, "2")
    assert _tags(client, "1")["rolled_back"] == "true"


def test_rollback_without_previous_champion_says_how_to_fix(client):
    _register(client, RegistryConfig(), 0.95)
    with pytest.raises(ValueError, match="no 'previous-champion' alias.*[Dd]eploy"):
        rollback(client, RegistryConfig())


def test_rollback_refuses_a_previous_champion_that_failed_validation_unless_forced(client):
    config = RegistryConfig()
    _register(client, config, 0.95)
    bad = _failed_version(client)
    deploy(client, config, bad, force=True)
    deploy(client, config, "1")  # champion 1 again; the failed version is previous-champion
    assert _aliases(client)[PREVIOUS_CHAMPION] == bad
    with pytest.raises(
        ValueError,
        match=rf"refusing to roll back to version {bad} .*below validation_threshold.*--force",
    ):
        rollback(client, config)
    assert (_aliases(client)[CHAMPION], _aliases(client)[PREVIOUS_CHAMPION]) == ("1", bad)

    message = rollback(client, config, force=True)
    assert "forced" in message
    assert (_aliases(client)[CHAMPION], _aliases(client)[PREVIOUS_CHAMPION]) == (bad, "1")
    assert _tags(client, bad)["forced_deploy"] == "true"
    assert _tags(client, bad)["champion_via"] == "rollback"


@pytest.mark.parametrize("version", ["abc", "0", "-1", "1.5", ""])
def test_a_version_that_is_not_a_number_is_a_clear_error(client, version):
    _register(client, RegistryConfig(), 0.95)
    with pytest.raises(ValueError, match=r"is not a version of 'deepfake-detector'.*existing: 1"):
        deploy(client, RegistryConfig(), version)


def test_promotion_compares_with_the_champion_as_it_is_when_it_moves(client, monkeypatch):
    """A writer outside the project lock moves the champion while a candidate is compared:
    the candidate is compared again, with the new champion."""
    config = RegistryConfig()
    _register(client, config, 0.90)  # version 1: champion
    outside = _register(client, config, 0.99, fingerprint="fp-b")  # version 2: not comparable
    assert not outside.promoted
    compare = operations._compare
    calls = []

    def champion_moves_meanwhile(candidate, champion, *args):
        calls.append(str(champion.version))
        if len(calls) == 1:
            deploy(client, config, outside.version)  # e.g. from the MLflow UI
        return compare(candidate, champion, *args)

    monkeypatch.setattr(operations, "_compare", champion_moves_meanwhile)
    result = _register(client, config, 0.95)  # version 3: better than 1, not comparable to 2
    assert calls == ["1", "2"]
    assert not result.promoted and result.champion == "2"
    assert "stays 2" in result.reason and "dataset_fingerprint" in result.reason
    assert _aliases(client)[CHAMPION] == "2"


def _five_versions_champion_2(client: MlflowClient, config: RegistryConfig) -> list[str]:
    runs = [_run(client) for _ in range(5)]
    for i, run_id in enumerate(runs):
        _register(client, config, 0.90 + i / 100, run_id=run_id)
    deploy(client, config, "2")  # champion 2 (old, outside the newest 2), previous-champion 5
    return runs


def test_cleanup_keeps_newest_and_aliased_and_archives(client, tmp_path):
    config = RegistryConfig(keep_versions=2)
    _five_versions_champion_2(client, config)
    assert _aliases(client) == {CHAMPION: "2", PREVIOUS_CHAMPION: "5", CHALLENGER: "5"}
    archive = tmp_path / "archive"

    assert cleanup(client, config, archive_dir=str(archive), dry_run=True) == ["1", "3"]
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 5
    assert not archive.exists()

    assert cleanup(client, config, archive_dir=str(archive)) == ["1", "3"]
    remaining = sorted(str(mv.version) for mv in client.search_model_versions(f"name = '{NAME}'"))
    assert remaining == ["2", "4", "5"]
    record = json.loads((archive / NAME / "version-3.json").read_text())
    assert record["version"] == "3" and float(record["tags"]["gate.test_auc"]) == pytest.approx(
        0.92
    )
    assert record["run_id"] and record["source"] and record["created"] and record["deleted_at"]
    assert record["aliases"] == []
    assert sorted(p.name for p in (archive / NAME).iterdir()) == [
        "version-1.json",
        "version-3.json",
    ]
    assert cleanup(client, config, archive_dir=str(archive)) == []


def test_cleanup_archives_to_the_source_run_or_refuses(client, tmp_path):
    config = RegistryConfig(keep_versions=2)
    runs = _five_versions_champion_2(client, config)
    client.delete_run(runs[2])  # version 3's run is gone, version 1's is not
    with pytest.raises(ValueError, match="version 3 .*archive_dir.*Nothing was deleted"):
        cleanup(client, config)
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 5

    with_folder = RegistryConfig(keep_versions=2, archive_dir=str(tmp_path / "cfg_archive"))
    assert cleanup(client, with_folder, dry_run=True) == ["1", "3"]
    # No folder: records go to the source runs (version 3 is now only deletable with a folder).
    client.restore_run(runs[2])
    assert cleanup(client, config) == ["1", "3"]
    record = mlflow.artifacts.load_dict(f"runs:/{runs[0]}/registry_archive/version-1.json")
    assert record["version"] == "1" and record["tags"]["validation_passed"] == "true"


def test_interrupted_promotion_leaves_champion_and_can_be_retried(client, monkeypatch):
    config = RegistryConfig()
    _register(client, config, 0.90)

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed between registration and promotion")

    run_id = _run(client)
    monkeypatch.setattr(operations, "promote_if_better", crash)
    with pytest.raises(RuntimeError, match="worker killed"):
        _register(client, config, 0.95, run_id=run_id)
    assert _aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}
    monkeypatch.undo()

    retried = _register(client, config, 0.95, run_id=run_id)
    assert retried.version == "2", "the retry reuses the version, no duplicate"
    assert retried.promoted and _aliases(client)[CHAMPION] == "2"
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 2


def test_failed_champion_move_leaves_champion(client, monkeypatch):
    config = RegistryConfig()
    _register(client, config, 0.90)
    real_set_alias = client.set_registered_model_alias

    def failing_set_alias(name, alias, version):
        if alias == CHAMPION:
            raise ConnectionError("tracking server went away")
        real_set_alias(name, alias, version)

    monkeypatch.setattr(client, "set_registered_model_alias", failing_set_alias)
    with pytest.raises(ConnectionError):
        _register(client, config, 0.95)
    assert _aliases(client)[CHAMPION] == "1"
    monkeypatch.undo()

    promoted, _ = promote_if_better(client, config, "2")
    assert promoted and _aliases(client)[CHAMPION] == "2"
    assert _aliases(client)[PREVIOUS_CHAMPION] == "1"


def test_list_and_format_versions(client):
    config = RegistryConfig()
    empty = list_versions(client, config)
    assert empty.empty and format_versions(empty) == "no registered versions"

    _register(client, config, 0.90)
    _register(client, config, 0.95)
    _register(client, config, 0.93)
    _failed_version(client)  # no gate tags, validation_passed=false, no alias
    table = list_versions(client, config)
    assert list(table.columns) == [
        "version",
        "aliases",
        "created",
        "validation_passed",
        "gate.test_auc",
        "gate.test_eer",
        "dataset_fingerprint",
        "run_id",
    ]
    assert list(table["version"]) == ["4", "3", "2", "1"]
    assert list(table["aliases"]) == ["", CHALLENGER, CHAMPION, PREVIOUS_CHAMPION]
    assert list(table["validation_passed"]) == ["false", "true", "true", "true"]
    assert table["gate.test_auc"].tolist()[1:] == [0.93, 0.95, 0.90]
    assert pd.isna(table["gate.test_auc"].iloc[0])
    assert pd.Timestamp(table["created"].iloc[0]).tzinfo is not None

    lines = format_versions(table).splitlines()
    assert len(lines) == 5 and lines[0].split()[:2] == ["version", "aliases"]
    assert lines[1].split()[:2] == ["4", "-"] and "false" in lines[1]
    assert lines[3].split()[:2] == ["2", CHAMPION] and "0.9500" in lines[3]
    assert lines[4].split()[:2] == ["1", PREVIOUS_CHAMPION]
    assert len({len(line) for line in lines[1:]}) == 1, "fixed width"
