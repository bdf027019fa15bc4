"""Property-based test of the OpenAPI schema (schemathesis): no input makes the API fail (5xx).

Runs the app in-process without its worker (queued jobs stay queued), on a fresh MLflow store
with one registered version, with an operator token, so every endpoint is reachable.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from mlflow import MlflowClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deepfake_kedro.api.app import ProjectInfo, create_app
from deepfake_kedro.api.config import ApiConfig
from deepfake_kedro.registry.config import RegistryConfig

OPERATOR = "o" * 24


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema_project")
    (root / "data/01_raw").mkdir(parents=True)
    (root / "data/01_raw/manifest.csv").write_text("image_path,label\n")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking)
    client.create_registered_model("deepfake-detector")
    client.create_model_version("deepfake-detector", str(root), tags={"validation_passed": "false"})
    project = ProjectInfo(path=root, env=None, training_params={}, registry=RegistryConfig(),
                          tracking_uri=tracking, registry_uri=tracking)
    return create_app(project, ApiConfig(tokens={"operator": [OPERATOR]}), start_worker=False)


def test_no_input_makes_the_api_fail(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case):
            case.call_and_validate(
                headers={"Authorization": f"Bearer {OPERATOR}"},
                checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                        response_schema_conformance],
            )

        check()
