"""Request bodies: non-finite numbers are a 422 naming the field, encodable as strict JSON,
and a job reports the very values its run is given."""

from __future__ import annotations

import json

import pytest

from deepfake_kedro.project import parse_params

TRAIN = '{"dataset_path": "data/01_raw/manifest.csv", %s}'
HEADERS = {"content-type": "application/json"}


def strict_json(text: str):
    """``text`` parsed as JSON proper: NaN and Infinity are not JSON."""
    def refuse(name: str):
        raise ValueError(f"{name} in a response body")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("body", "loc", "value"), [
    (TRAIN % '"hyperparameters": {"learning_rate": NaN}', ["hyperparameters", "learning_rate"], "NaN"),
    (TRAIN % '"hyperparameters": {"weight_decay": Infinity}', ["hyperparameters", "weight_decay"],
     "Infinity"),
    (TRAIN % '"hyperparameters": {"fusion": {"dropout": NaN}}',
     ["hyperparameters", "fusion", "dropout"], "NaN"),
    (TRAIN % '"hyperparameters": {"min_delta": 1e999}', ["hyperparameters", "min_delta"], "Infinity"),
    (TRAIN % '"validation_threshold": -Infinity', ["validation_threshold"], "-Infinity"),
    (TRAIN % '"hyperparameters": {"epochs": NaN}', ["hyperparameters", "epochs"], "NaN"),
    ('{"dataset_path": NaN}', ["dataset_path"], "NaN"),
])
def test_non_finite_numbers_are_a_422_naming_the_field(api_client, body, loc, value):
    client = api_client()
    response = client.post("/v1/train/ensemble", content=body, headers=HEADERS)
    assert response.status_code == 422, response.text
    errors = strict_json(response.text)["detail"]
    assert any(e["loc"] == ["body", *loc] and e["input"] == value for e in errors), errors
    assert client.get("/v1/train/jobs").json()["total"] == 0


def test_a_non_finite_validation_threshold_is_a_422_on_validate_too(api_client):
    response = api_client().post("/v1/train/validate", headers=HEADERS,
                                 content='{"version": "1", "validation_threshold": NaN}')
    assert response.status_code == 422
    assert strict_json(response.text)["detail"][0]["loc"] == ["body", "validation_threshold"]


def test_the_status_shows_the_values_the_run_gets(api_client):
    client = api_client()
    response = client.post("/v1/train/ensemble", headers=HEADERS, content=TRAIN % (
        '"hyperparameters": {"weight_decay": 1e-05, "learning_rate": 0.0003}'))
    assert response.status_code == 202, response.text
    status = strict_json(client.get(response.headers["Location"]).text)
    sent = {"weight_decay": 1e-05, "learning_rate": 0.0003}
    assert status["request"]["hyperparameters"] == sent
    assert status["params"]["ensemble_training"] == sent
    command = client.app.state.store.get(status["job_id"])["command"]
    run_params = parse_params(command[command.index("--params") + 1])  # as `kedro run` reads it
    assert run_params["ensemble_training"] == sent
