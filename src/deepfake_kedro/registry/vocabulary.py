"""The MLflow vocabulary of the project: registered model, aliases, run and version tags.

Every name the project writes to or reads from MLflow is defined here and nowhere else
(``tests/registry/test_vocabulary.py`` keeps the alias names here). Plain strings, no MLflow
import, so any module can use them.

Run tags (the training run): ``git_commit``, ``dataset_fingerprint``, ``dataset_n_images``,
``dataset_newest_captured_at``, ``backbones``, ``weights``; after registration
``registered_version``; after re-validating a registered version ``validated_model_uri``. The
MLflow run of an Airflow DAG run: ``airflow_dag_id``, ``airflow_run_id``.

Version tags (a registered version): the same lineage names (a version's
``dataset_newest_captured_at`` is its training run's; versions registered before the names
were unified carry ``data_newest_captured_at``, still read by :func:`newest_captured_at_tag`),
``validation_passed``, ``validation_summary``, ``validation_failed``, ``gate.<metric>``,
``operating_threshold``, ``threshold_method``, ``training_run_id``, ``trained_at``,
``validation_report``, ``registered_by_run_id``, ``source_model_uri``; promotion history
``champion_from`` / ``champion_until`` / ``champion_via``, ``forced_deploy``, ``rolled_back`` /
``rolled_back_at``; re-validation ``last_validation_passed`` / ``_at`` / ``_run_id`` /
``_summary``. Timestamps are :mod:`deepfake_kedro.values` timestamps (``...Z``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --- registered model and aliases -----------------------------------------------------------

MODEL_NAME = "deepfake-detector"  # default of registry.model_name

CHAMPION = "champion"  # the version that serves
CHALLENGER = "challenger"  # the newest version that passed validation
PREVIOUS_CHAMPION = "previous-champion"  # the champion before the last move (rollback target)
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)  # in the order they are listed

# --- lineage: run tags, copied onto the version with the same names -------------------------

TAG_GIT_COMMIT = "git_commit"
TAG_FINGERPRINT = "dataset_fingerprint"
TAG_N_IMAGES = "dataset_n_images"
TAG_NEWEST_CAPTURED_AT = "dataset_newest_captured_at"
# The version tag's name before it was unified with the run tag's; read, never written.
LEGACY_TAG_NEWEST_CAPTURED_AT = "data_newest_captured_at"
TAG_BACKBONES = "backbones"
TAG_WEIGHTS = "weights"

# --- version tags written by registration ---------------------------------------------------

TAG_VALIDATION_PASSED = "validation_passed"
TAG_VALIDATION_SUMMARY = "validation_summary"
TAG_VALIDATION_FAILED = "validation_failed"
GATE_PREFIX = "gate."  # gate.<metric>: the validation gate's metrics, floats as text
TAG_OPERATING_THRESHOLD = "operating_threshold"
TAG_THRESHOLD_METHOD = "threshold_method"
TAG_TRAINING_RUN_ID = "training_run_id"
TAG_TRAINED_AT = "trained_at"
TAG_VALIDATION_REPORT = "validation_report"  # URI of the HTML report
TAG_REGISTERED_BY_RUN_ID = "registered_by_run_id"
# The model URI the version was registered from: a re-run of the same registration finds it.
TAG_SOURCE_MODEL_URI = "source_model_uri"

# --- version tags written by promotion, deploy and rollback --------------------------------

TAG_CHAMPION_FROM = "champion_from"
TAG_CHAMPION_UNTIL = "champion_until"
TAG_CHAMPION_VIA = "champion_via"  # auto, deploy or rollback
TAG_FORCED_DEPLOY = "forced_deploy"
TAG_ROLLED_BACK = "rolled_back"
TAG_ROLLED_BACK_AT = "rolled_back_at"

# --- version tags written when a registered version is validated again ---------------------

TAG_LAST_VALIDATION_PASSED = "last_validation_passed"
TAG_LAST_VALIDATION_AT = "last_validation_at"
TAG_LAST_VALIDATION_RUN_ID = "last_validation_run_id"
TAG_LAST_VALIDATION_SUMMARY = "last_validation_summary"

# --- run tags written by the registry hooks -------------------------------------------------

RUN_TAG_REGISTERED_VERSION = "registered_version"
RUN_TAG_VALIDATED_MODEL_URI = "validated_model_uri"

# --- run tags of an Airflow DAG run's MLflow run (deepfake_kedro/airflow_tasks.py) ----------

RUN_TAG_AIRFLOW_DAG_ID = "airflow_dag_id"
RUN_TAG_AIRFLOW_RUN_ID = "airflow_run_id"

# --- run artifacts --------------------------------------------------------------------------

VALIDATION_REPORT_ARTIFACT = "validation/validation_report.html"
REGISTRATION_RESULT_ARTIFACT = "registration/registration_result.json"
ARCHIVE_ARTIFACT_DIR = "registry_archive"  # records of versions cleanup deleted
# First found wins: registration's path, then the one ensemble_training's catalog entry uses.
CHECKPOINT_ARTIFACTS = ("checkpoint/fusion_checkpoint.pt", "model/fusion_checkpoint.pt")
MANIFEST_ARTIFACT = "data/split_manifest.parquet"

MAX_TAG_LENGTH = 5000  # MLflow's limit on a tag value


def gate_tag(metric: str) -> str:
    """The version tag holding gate metric ``metric`` (``gate.test_auc``)."""
    return f"{GATE_PREFIX}{metric}"


def dataset_tags(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """The lineage tags of a ``dataset_fingerprint`` record, for the run and the version.

    Args:
        fingerprint: Output of :func:`deepfake_kedro.ingestion.dataset_fingerprint`.

    Returns:
        ``dataset_fingerprint``, ``dataset_n_images`` and ``dataset_newest_captured_at``;
        the ones the record lacks are left out.
    """
    tags = {
        TAG_FINGERPRINT: fingerprint["fingerprint"],
        TAG_N_IMAGES: fingerprint.get("n_images"),
        TAG_NEWEST_CAPTURED_AT: fingerprint.get("newest_captured_at") or None,
    }
    return {key: value for key, value in tags.items() if value is not None}


def newest_captured_at_tag(tags: Mapping[str, str]) -> str | None:
    """``dataset_newest_captured_at`` of a run's or version's tags, or the legacy version tag
    ``data_newest_captured_at`` of versions registered before the names were unified."""
    return tags.get(TAG_NEWEST_CAPTURED_AT) or tags.get(LEGACY_TAG_NEWEST_CAPTURED_AT) or None


def version_uri(name: str, version: str | int) -> str:
    """``models:/<name>/<version>``."""
    return f"models:/{name}/{version}"


def alias_uri(name: str, alias: str) -> str:
    """``models:/<name>@<alias>``."""
    return f"models:/{name}@{alias}"


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.

    Raises:
        ValueError: for anything else, saying which forms are accepted.
    """
    body = uri.removeprefix("models:/") if uri.startswith("models:/") else None
    if body:
        if "@" in body and "/" not in body:
            name, _, alias = body.partition("@")
            if name and alias:
                return name, alias, None
        name, _, version = body.rpartition("/")
        if name and version.isdigit():
            return name, None, version
    raise ValueError(
        f"model_uri {uri!r} is not a registered model URI: use models:/<name>@<alias> "
        f"(e.g. {alias_uri(MODEL_NAME, CHAMPION)}) or models:/<name>/<version>"
    )
