"""Model-registry operations on MLflow aliases: register, promote, deploy, roll back, clean up.

Aliases, never the deprecated stages:

- ``challenger``: the newest version that passed validation. It stays on that version after
  an auto-promotion (then one version holds both ``champion`` and ``challenger``), so
  ``models:/<name>@challenger`` always resolves to the latest validated candidate.
- ``champion``: the version that serves. It only ever moves with one
  ``set_registered_model_alias`` call, so it is never absent once set.
- ``previous-champion``: the champion before the last move; ``rollback`` swaps it with
  ``champion``, so a second rollback undoes the first.

Version tags written here (names in :mod:`deepfake_kedro.registry.vocabulary`):
``validation_passed``, ``validation_summary``, ``gate.<metric>``, ``source_model_uri``
(registration), ``champion_from`` / ``champion_until`` / ``champion_via`` (timestamps of the
latest stint as champion and how it started: ``auto``, ``deploy``, ``rollback``),
``forced_deploy``, ``rolled_back`` / ``rolled_back_at``.

Atomicity: registration creates the version with ``mlflow.register_model`` (tags at
creation, waiting for ``READY``), sets ``challenger`` and only then promotes. An exception
anywhere before the final champion move leaves ``champion`` as it was; re-running the same
registration (same model URI) reuses the version it created instead of adding another.

Concurrency: every writer holds the project lock (:mod:`deepfake_kedro.project_lock`: training
runs with their registration, deploy, rollback, cleanup), so no other writer of this project
moves an alias meanwhile. A promotion still reads the champion again just before it moves it
and compares again if it moved (a writer outside the lock: the MLflow UI, another machine).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from deepfake_kedro.registry.config import RegistryConfig
from deepfake_kedro.registry.vocabulary import (
    ALIASES,
    ARCHIVE_ARTIFACT_DIR,
    CHALLENGER,
    CHAMPION,
    GATE_PREFIX,
    MAX_TAG_LENGTH,
    PREVIOUS_CHAMPION,
    TAG_CHAMPION_FROM,
    TAG_CHAMPION_UNTIL,
    TAG_CHAMPION_VIA,
    TAG_FINGERPRINT,
    TAG_FORCED_DEPLOY,
    TAG_ROLLED_BACK,
    TAG_ROLLED_BACK_AT,
    TAG_SOURCE_MODEL_URI,
    TAG_VALIDATION_FAILED,
    TAG_VALIDATION_PASSED,
    TAG_VALIDATION_SUMMARY,
    gate_tag,
)
from deepfake_kedro.values import finite_or_none, iso_from_millis, utc_now

logger = logging.getLogger(__name__)

# Re-exported: callers name the aliases through this module or the vocabulary.
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "RegistrationResult",
    "cleanup",
    "deploy",
    "find_version",
    "format_versions",
    "list_versions",
    "promote_if_better",
    "register_model",
    "rollback",
]

BASE_COLUMNS = ("version", "aliases", "created", TAG_VALIDATION_PASSED)
TAIL_COLUMNS = (TAG_FINGERPRINT, "run_id")

# Float noise must not decide a promotion: 0.96 - 0.95 is 0.00999... in binary.
_TOLERANCE = 1e-12
# Comparisons against a champion that another writer moved meanwhile, before giving up.
_PROMOTION_ATTEMPTS = 3


@dataclass
class RegistrationResult:
    """What ``register_model`` did.

    Attributes:
        registered: Whether a model version exists for this run (created or reused).
        version: That version, or ``None`` when nothing was registered.
        promoted: Whether the version was made champion by this call.
        reason: Human-readable explanation of the outcome.
        champion: The champion version after the call (``None`` if there is none).
    """

    registered: bool
    version: str | None
    promoted: bool
    reason: str
    champion: str | None


def register_model(
    client: MlflowClient | None,
    config: RegistryConfig | Mapping[str, Any],
    *,
    model_uri: str,
    verdict: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, Any],
    champion_baseline: Mapping[str, Any] | None = None,
) -> RegistrationResult:
    """Register a validated model as a new version, alias it ``challenger``, maybe promote it.

    Args:
        client: MLflow client; ``None`` creates one on the active tracking URI.
        config: Registry settings (a ``RegistryConfig`` or its params dict).
        model_uri: The logged model (``runs:/<run_id>/<name>``, ``models:/<model_id>`` or
            any URI ``mlflow.register_model`` accepts); MLflow records its run on the version.
        verdict: The validation gate's verdict: ``passed`` (bool), ``failed`` (reasons) and
            optionally ``summary``.
        metrics: Gate metrics, written as ``gate.<name>`` tags; must include
            ``config.promotion_metric`` for auto-promotion over an existing champion.
        tags: Lineage tags for the version (``dataset_fingerprint``, ``git_commit``,
            ``backbones``, ``weights``, ``validation_report`` ...); values become strings.
        champion_baseline: The current champion re-scored on this run's test data (see
            :func:`promote_if_better`); lets a model trained on new data be compared fairly.

    Returns:
        The outcome. A failed verdict registers nothing and says why (logged at WARNING).

    Raises:
        ValueError: If ``verdict`` has no boolean ``passed``, a metric is not a number, or
            ``client`` is not on MLflow's active tracking and registry URIs.
        RuntimeError: If MLflow cannot register the model, or the version is not ``READY``
            within ``config.ready_timeout_s``; no alias has moved then.
    """
    client, config = _client(client), _config(config)
    name = config.model_name
    if not _verdict_passed(verdict):
        failed = [str(reason) for reason in verdict.get("failed") or []]
        if not failed:
            failed = [str(verdict.get("summary") or "no failed check was recorded")]
        reason = f"validation failed, so no version of '{name}' was registered: " + "; ".join(
            failed
        )
        logger.warning(reason)
        return RegistrationResult(False, None, False, reason, _aliases(client, name).get(CHAMPION))

    version_tags = _version_tags(tags, metrics, verdict, model_uri)
    version = _create_or_reuse_version(client, config, model_uri, version_tags)
    client.set_registered_model_alias(name, CHALLENGER, version)
    logger.info("Version %s of '%s' registered and aliased '%s'", version, name, CHALLENGER)
    promoted, reason = promote_if_better(client, config, version, champion_baseline)
    champion = _aliases(client, name).get(CHAMPION)
    return RegistrationResult(True, version, promoted, reason, champion)


def promote_if_better(
    client: MlflowClient | None,
    config: RegistryConfig | Mapping[str, Any],
    version: str,
    champion_baseline: Mapping[str, Any] | None = None,
) -> tuple[bool, str]:
    """Make ``version`` champion if there is none or it beats the champion by the margin.

    Both versions' ``gate.<promotion_metric>`` tags are compared only when their
    ``dataset_fingerprint`` tags match (unless ``allow_different_test_data``). A version
    without ``validation_passed=true`` is never auto-promoted.

    When data has changed since the champion was validated, its tags were measured on other
    test data; ``champion_baseline`` then carries the champion re-scored on the candidate's
    test data: ``{"version", "dataset_fingerprint", "metrics": {<metric>: value}}``. It is
    used only if it is about the current champion and the candidate's fingerprint.

    Args:
        client: MLflow client; ``None`` creates one on the active tracking URI.
        config: Registry settings.
        version: The candidate version.
        champion_baseline: Optional re-scored champion metrics, as above.

    Returns:
        ``(promoted, reason)``.
    """
    client, config = _client(client), _config(config)
    name, version = config.model_name, str(version)
    candidate = _get_version(client, name, version)
    if candidate.tags.get(TAG_VALIDATION_PASSED) != "true":
        reason = (
            f"version {version} is not auto-promoted: its {TAG_VALIDATION_PASSED} tag is "
            f"{candidate.tags.get(TAG_VALIDATION_PASSED) or 'missing'}, not 'true'"
        )
        logger.warning(reason)
        return False, reason
    for _ in range(_PROMOTION_ATTEMPTS):
        # The champion as it is now, not as it was when the run started.
        champion_version = _aliases(client, name).get(CHAMPION)
        if champion_version == version:
            reason = f"version {version} is already the {CHAMPION} of '{name}'"
            logger.info(reason)
            return False, reason
        if champion_version is None:
            why = "there was no champion"
        else:
            champion = _get_version(client, name, champion_version)
            better, why, level = _compare(candidate, champion, config, champion_baseline)
            if not better:
                reason = (
                    f"version {version} is not promoted, {CHAMPION} stays {champion_version}: "
                    f"{why}"
                )
                logger.log(level, reason)
                return False, reason
        # Moved by a writer outside the project lock (the MLflow UI, another machine) while
        # this one compared: compare with the new champion instead.
        moved_to = _aliases(client, name).get(CHAMPION)
        if moved_to != champion_version:
            logger.warning(
                "%s of '%s' moved from %s to %s while version %s was compared; comparing again",
                CHAMPION, name, champion_version, moved_to, version,
            )
            continue
        _move_champion(client, name, version, via="auto")
        if champion_version is None:
            reason = f"version {version} is now {CHAMPION} of '{name}' ({why})"
        else:
            reason = (
                f"version {version} promoted to {CHAMPION} of '{name}' ({why}); "
                f"version {champion_version} is now {PREVIOUS_CHAMPION}"
            )
        logger.info(reason)
        return True, reason
    reason = (
        f"version {version} is not promoted: {CHAMPION} of '{name}' kept moving while it was "
        f"compared ({_PROMOTION_ATTEMPTS} times); deploy it explicitly if intended"
    )
    logger.warning(reason)
    return False, reason


def deploy(
    client: MlflowClient | None,
    config: RegistryConfig | Mapping[str, Any],
    version: str,
    *,
    force: bool = False,
) -> str:
    """Move ``champion`` to ``version``; the old champion becomes ``previous-champion``.

    Args:
        client: MLflow client; ``None`` creates one on the active tracking URI.
        config: Registry settings.
        version: Version to serve.
        force: Deploy even if the version did not pass validation; it is then tagged
            ``forced_deploy=true``.

    Returns:
        A one-line description of what changed.

    Raises:
        ValueError: If the version does not exist, or did not pass validation and ``force``
            is false.
    """
    client, config = _client(client), _config(config)
    name, version = config.model_name, str(version)
    target = _get_version(client, name, version)
    passed = _passed_or_refuse(target, name, "deploy", force=force)
    current = _aliases(client, name).get(CHAMPION)
    if current == version:
        message = f"version {version} is already the {CHAMPION} of '{name}'; nothing changed"
        logger.info(message)
        return message
    if not passed:
        # Tagged before the move, so a forced champion is never untagged.
        client.set_model_version_tag(name, version, TAG_FORCED_DEPLOY, "true")
    current = _move_champion(client, name, version, via="deploy")
    message = f"{CHAMPION} of '{name}' is now version {version}" + (
        f" (was {current}, now {PREVIOUS_CHAMPION})" if current else ""
    )
    if not passed:
        message += " [forced: it did not pass validation]"
    logger.info(message)
    return message


def _passed_or_refuse(target: ModelVersion, name: str, action: str, *, force: bool) -> bool:
    """Whether ``target`` passed validation; if not, refuse to ``action`` it unless ``force``.

    Raises:
        ValueError: if it did not pass and ``force`` is false (names the failed checks).
    """
    passed = target.tags.get(TAG_VALIDATION_PASSED)
    if passed == "true":
        return True
    failed = (
        target.tags.get(TAG_VALIDATION_FAILED)
        or target.tags.get(TAG_VALIDATION_SUMMARY)
        or "no failed checks recorded on the version"
    )
    if not force:
        raise ValueError(
            f"refusing to {action} version {target.version} of '{name}': it did not pass "
            f"validation ({TAG_VALIDATION_PASSED}={passed or 'missing'}; failed checks: "
            f"{failed}). Deploy a validated version, or pass force=True (CLI: --force) to "
            f"{action} it anyway."
        )
    logger.warning(
        "Forced %s of version %s of '%s', which did not pass validation: %s",
        action,
        target.version,
        name,
        failed,
    )
    return False


def rollback(
    client: MlflowClient | None,
    config: RegistryConfig | Mapping[str, Any],
    *,
    force: bool = False,
) -> str:
    """Swap ``champion`` and ``previous-champion``; a second rollback undoes the first.

    The version rolled back from is tagged ``rolled_back=true`` (cleared if it becomes
    champion again) and ``rolled_back_at``. As with :func:`deploy`, a previous champion that
    did not pass validation (it was force-deployed) is reinstated only with ``force``, and
    then tagged ``forced_deploy=true``.

    Args:
        client: MLflow client; ``None`` creates one on the active tracking URI.
        config: Registry settings.
        force: Roll back even to a version that did not pass validation.

    Returns:
        A one-line description of what changed.

    Raises:
        ValueError: If there is no champion or no distinct previous champion, or the previous
            champion did not pass validation and ``force`` is false.
    """
    client, config = _client(client), _config(config)
    name = config.model_name
    aliases = _aliases(client, name)
    current, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS_CHAMPION)
    if previous is None:
        raise ValueError(
            f"cannot roll back '{name}': it has no '{PREVIOUS_CHAMPION}' alias. Deploy a "
            "specific version instead (deploy(client, config, '<version>'), CLI: deploy)."
        )
    if current is None:
        raise ValueError(
            f"cannot roll back '{name}': it has no '{CHAMPION}' alias to roll back from. "
            f"Deploy a specific version instead, e.g. version {previous}."
        )
    if current == previous:
        raise ValueError(
            f"cannot roll back '{name}': '{CHAMPION}' and '{PREVIOUS_CHAMPION}' both point at "
            f"version {current} (an interrupted promotion?). Deploy a specific version instead."
        )
    target = _get_version(client, name, previous)
    passed = _passed_or_refuse(target, name, "roll back to", force=force)
    if not passed:
        client.set_model_version_tag(name, previous, TAG_FORCED_DEPLOY, "true")
    now = utc_now()
    client.set_model_version_tag(name, current, TAG_ROLLED_BACK, "true")
    client.set_model_version_tag(name, current, TAG_ROLLED_BACK_AT, now)
    # Champion first: if the second move fails, the rollback itself has still happened.
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_alias(name, PREVIOUS_CHAMPION, current)
    _record_stint(client, name, previous, current, via="rollback", now=now)
    message = (
        f"rolled back '{name}': {CHAMPION} is now version {previous} "
        f"(was {current}, now {PREVIOUS_CHAMPION}; roll back again to undo)"
    )
    if not passed:
        message += " [forced: it did not pass validation]"
    logger.info(message)
    return message


def cleanup(
    client: MlflowClient | None,
    config: RegistryConfig | Mapping[str, Any],
    *,
    archive_dir: str | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Delete all but the newest ``keep_versions`` versions, keeping every aliased version.

    Each deleted version is first archived as a JSON record (version, tags, aliases, run_id,
    source, creation time, deleted_at) to ``archive_dir`` if given, else
    ``config.archive_dir``, else its source run as ``registry_archive/version-<n>.json``.

    Args:
        client: MLflow client; ``None`` creates one on the active tracking URI.
        config: Registry settings.
        archive_dir: Folder for the records; overrides ``config.archive_dir``.
        dry_run: Only report what would be deleted.

    Returns:
        The deleted (or, in a dry run, deletable) versions, oldest first.

    Raises:
        ValueError: Before anything is deleted, if a version has no archive destination
            (no folder configured and its source run is gone).
    """
    client, config = _client(client), _config(config)
    name = config.model_name
    versions = _all_versions(client, name)
    protected = set(_aliases(client, name).values())
    keep = {str(mv.version) for mv in versions[: config.keep_versions]} | protected
    doomed = [mv for mv in reversed(versions) if str(mv.version) not in keep]
    if not doomed:
        logger.info(
            "Cleanup of '%s': %d version(s), nothing beyond the newest %d and the aliased ones",
            name,
            len(versions),
            config.keep_versions,
        )
        return []
    folder = archive_dir or config.archive_dir
    # Every destination is resolved before anything is deleted.
    plan = [(str(mv.version), _archive_destination(client, name, mv, folder)) for mv in doomed]
    if dry_run:
        for version, destination in plan:
            logger.info(
                "Dry run: would archive version %s to %s and delete it", version, destination
            )
        return [version for version, _ in plan]

    deleted = []
    for version, destination in plan:
        current = _get_version(client, name, version)
        if current.aliases:  # aliased since the plan was made
            logger.info("Keeping version %s: it now holds %s", version, current.aliases)
            continue
        where = _write_archive(client, _archive_record(current), destination)
        client.delete_model_version(name, version)
        logger.info("Deleted version %s of '%s' (archived to %s)", version, name, where)
        deleted.append(version)
    return deleted


def list_versions(
    client: MlflowClient | None, config: RegistryConfig | Mapping[str, Any]
) -> pd.DataFrame:
    """Table of the registered versions, newest first.

    Args:
        client: MLflow client; ``None`` creates one on the active tracking URI.
        config: Registry settings.

    Returns:
        Columns ``version``, ``aliases`` (comma list), ``created`` (UTC ISO),
        ``validation_passed``, one ``gate.<metric>`` column per gate metric tag (floats),
        ``dataset_fingerprint`` and ``run_id``. Empty (with the base columns) if the model
        is not registered.
    """
    client, config = _client(client), _config(config)
    name = config.model_name
    versions = _all_versions(client, name)
    by_version: dict[str, list[str]] = {}
    for alias, version in _aliases(client, name).items():
        by_version.setdefault(version, []).append(alias)
    rows = []
    for mv in versions:
        row: dict[str, Any] = {
            "version": str(mv.version),
            "aliases": ",".join(_ordered_aliases(by_version.get(str(mv.version), []))),
            "created": iso_from_millis(mv.creation_timestamp),
            TAG_VALIDATION_PASSED: mv.tags.get(TAG_VALIDATION_PASSED),
        }
        for key, value in mv.tags.items():
            if key.startswith(GATE_PREFIX):
                row[key] = finite_or_none(value)
        row[TAG_FINGERPRINT] = mv.tags.get(TAG_FINGERPRINT)
        row["run_id"] = mv.run_id
        rows.append(row)
    gate_columns = sorted({key for row in rows for key in row if key.startswith(GATE_PREFIX)})
    columns = [*BASE_COLUMNS, *gate_columns, *TAIL_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def format_versions(table: pd.DataFrame) -> str:
    """Render ``list_versions`` output as a fixed-width table for the terminal.

    Args:
        table: Output of ``list_versions``.

    Returns:
        The table as text (fingerprints and run ids shortened to 12 characters), or a
        one-line note when there are no versions.
    """
    if table.empty:
        return "no registered versions"
    columns = [str(column) for column in table.columns]
    cells = {column: [_cell(column, value) for value in table[column]] for column in columns}
    widths = {column: max(len(column), *map(len, cells[column])) for column in columns}
    right = {column for column in columns if column == "version" or column.startswith(GATE_PREFIX)}

    def line(values: list[str]) -> str:
        parts = [
            value.rjust(widths[column]) if column in right else value.ljust(widths[column])
            for column, value in zip(columns, values, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rows = [line([cells[column][i] for column in columns]) for i in range(len(table))]
    return "\n".join([line(columns), *rows])


def _cell(column: str, value: Any) -> str:
    if pd.isna(value) or value == "":
        return "-"
    if column.startswith(GATE_PREFIX):
        return f"{float(value):.4f}"
    if column in TAIL_COLUMNS:
        return _short(value)
    return str(value)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 12 else text[:12]


# --- helpers -------------------------------------------------------------------------------


def _client(client: MlflowClient | None) -> MlflowClient:
    return client if client is not None else MlflowClient()


def _config(config: RegistryConfig | Mapping[str, Any]) -> RegistryConfig:
    return config if isinstance(config, RegistryConfig) else RegistryConfig.model_validate(config)


def _verdict_passed(verdict: Mapping[str, Any]) -> bool:
    passed = verdict.get("passed") if isinstance(verdict, Mapping) else None
    # `in (True, False)` also accepts numpy booleans but not strings like "false".
    if passed is None or isinstance(passed, str) or passed not in (True, False):
        raise ValueError(
            "the validation verdict needs a boolean 'passed' (from evaluation.gate."
            f"evaluate_gate); got {verdict!r:.200}"
        )
    return bool(passed)


def _version_tags(
    tags: Mapping[str, Any],
    metrics: Mapping[str, float],
    verdict: Mapping[str, Any],
    model_uri: str,
) -> dict[str, str]:
    result = {str(key): str(value) for key, value in tags.items() if value is not None}
    result[TAG_VALIDATION_PASSED] = "true"
    result[TAG_SOURCE_MODEL_URI] = model_uri
    if verdict.get("summary"):
        result[TAG_VALIDATION_SUMMARY] = str(verdict["summary"])[:MAX_TAG_LENGTH]
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"gate metric {key!r} must be a number; got {value!r}") from error
        result[gate_tag(key)] = repr(number)
    return result


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of the registered model ({} if it does not exist).

    Read from the registered model: search results may leave a version's aliases empty.
    """
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    # Versions are strings in this module; the SQL store returns ints.
    return {alias: str(version) for alias, version in aliases.items()}


def _ordered_aliases(aliases: list[str]) -> list[str]:
    known = [alias for alias in ALIASES if alias in aliases]
    return known + sorted(set(aliases) - set(ALIASES))


def find_version(
    client: MlflowClient, name: str, alias: str | None, version: str | None
) -> ModelVersion | None:
    """The model version an alias or a version number names, or ``None`` when the model,
    the alias or the version does not exist (other registry errors are raised)."""
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    version = str(version).strip()
    if not version.isdigit() or int(version) < 1:
        raise ValueError(
            f"{version!r} is not a version of '{name}': versions are whole numbers from 1 "
            f"(existing: {_existing(client, name)}; list them with list_versions / the list "
            "command)"
        )
    try:
        return client.get_model_version(name, version)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ValueError(
            f"model '{name}' has no version {version}; existing versions: "
            f"{_existing(client, name)} (list them with list_versions / the list command)"
        ) from error


def _existing(client: MlflowClient, name: str) -> str:
    return ", ".join(str(mv.version) for mv in _all_versions(client, name)) or "none"


def _all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, newest (highest number) first."""
    versions: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(f"name = '{name}'", page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            break
    return sorted(versions, key=lambda mv: int(mv.version), reverse=True)


def _create_or_reuse_version(
    client: MlflowClient, config: RegistryConfig, model_uri: str, tags: dict[str, str]
) -> str:
    """The version registered from ``model_uri``: an earlier one, or a new one.

    ``mlflow.register_model`` creates the registered model when needed, resolves a
    ``runs:/`` URI to the run's logged model, creates the version with its tags (so it never
    exists without ``validation_passed``) and waits until it is ``READY``. It registers on
    MLflow's active URIs, hence the check that ``client`` is on them too.
    """
    name = config.model_name
    _same_store(client)
    existing = _earlier_version(client, name, model_uri)
    if existing is not None:
        version = str(existing.version)
        logger.info("Reusing version %s of '%s' registered earlier from %s", version, name, model_uri)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        return version
    try:
        created = mlflow.register_model(
            model_uri,
            name,
            await_registration_for=math.ceil(config.ready_timeout_s),
            tags=tags,
        )
    except MlflowException as error:
        raise RuntimeError(
            f"could not register {model_uri} as a version of '{name}': {error.message}. No "
            "alias moved. Re-run the registration (`kedro run --pipelines registration`; it "
            "reuses a version it created), or raise registry.ready_timeout_s if it timed out"
        ) from error
    return str(created.version)


def _earlier_version(client: MlflowClient, name: str, model_uri: str) -> ModelVersion | None:
    """The version an earlier, interrupted registration of ``model_uri`` created, if any."""
    if "'" in model_uri:
        raise ValueError(f"model_uri must not contain a single quote; got {model_uri!r}")
    found = client.search_model_versions(
        f"name = '{name}' and tags.{TAG_SOURCE_MODEL_URI} = '{model_uri}'"
    )
    usable = [mv for mv in found if mv.status != "FAILED_REGISTRATION"]
    if not usable:
        return None
    existing = max(usable, key=lambda mv: int(mv.version))
    if existing.status != "READY":
        raise RuntimeError(
            f"version {existing.version} of '{name}', registered earlier from {model_uri}, is "
            f"still {existing.status}; re-run the registration once it is READY"
        )
    return existing


def _same_store(client: MlflowClient) -> None:
    active = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    # MlflowClient has no public getter for its registry URI.
    mine = (client.tracking_uri, client._registry_uri)
    if mine != active:
        raise ValueError(
            f"the registry client is on {mine[1]} (tracking {mine[0]}) but mlflow.register_model "
            f"registers on MLflow's active registry {active[1]} (tracking {active[0]}); "
            "pass client=None or set mlflow.set_tracking_uri / set_registry_uri to the client's"
        )


def _compare(
    candidate: ModelVersion,
    champion: ModelVersion,
    config: RegistryConfig,
    baseline: Mapping[str, Any] | None = None,
) -> tuple[bool, str, int]:
    """``(better, why, log level)`` for the challenger-vs-champion rule."""
    new_fp, old_fp = candidate.tags.get(TAG_FINGERPRINT), champion.tags.get(TAG_FINGERPRINT)
    metric = config.promotion_metric
    if (
        baseline
        and str(baseline.get("version")) == str(champion.version)
        and new_fp is not None
        and baseline.get(TAG_FINGERPRINT) == new_fp
    ):
        old = finite_or_none((baseline.get("metrics") or {}).get(metric))
        new = finite_or_none(candidate.tags.get(gate_tag(metric)))
        if new is not None and old is not None:
            return _by_margin(
                new, old, champion.version, config, "champion re-scored on the same test data"
            )
    if not config.allow_different_test_data and (new_fp is None or new_fp != old_fp):
        return (
            False,
            f"its {TAG_FINGERPRINT} ({_short(new_fp or 'missing')}) differs from champion "
            f"version {champion.version}'s ({_short(old_fp or 'missing')}), so their metrics are not measured "
            "on the same test data; set registry.allow_different_test_data to compare anyway, "
            "or deploy it explicitly",
            logging.WARNING,
        )
    key = gate_tag(metric)
    new, old = finite_or_none(candidate.tags.get(key)), finite_or_none(champion.tags.get(key))
    if new is None or old is None:
        which = f"version {candidate.version}" if new is None else f"champion {champion.version}"
        return (
            False,
            f"{which} has no finite {key} tag to compare; deploy explicitly if intended",
            logging.WARNING,
        )
    return _by_margin(new, old, champion.version, config, "")


def _by_margin(
    new: float, old: float, champion_version: str, config: RegistryConfig, note: str
) -> tuple[bool, str, int]:
    metric = config.promotion_metric
    gain = new - old if config.greater_is_better else old - new
    shown = (
        f"{metric} {new:.4f} vs champion {champion_version}'s {old:.4f}"
        + (f" ({note})" if note else "")
        + f", gain {gain:+.4f}, margin {config.promotion_margin:g}"
    )
    if gain >= config.promotion_margin - _TOLERANCE:
        return True, shown, logging.INFO
    return False, f"{shown}: not better by the margin", logging.INFO


def _move_champion(client: MlflowClient, name: str, version: str, *, via: str) -> str | None:
    """Point ``champion`` at ``version`` in one alias move, keeping the old one as previous;
    the old champion (read just before the move), or ``None``."""
    old = _aliases(client, name).get(CHAMPION)
    if old is not None and old != version:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old)
    # The only write to `champion`: it moves from old to new, it is never deleted.
    client.set_registered_model_alias(name, CHAMPION, version)
    _record_stint(client, name, version, old, via=via, now=utc_now())
    return old


def _record_stint(
    client: MlflowClient, name: str, new: str, old: str | None, *, via: str, now: str
) -> None:
    client.set_model_version_tag(name, new, TAG_CHAMPION_FROM, now)
    client.set_model_version_tag(name, new, TAG_CHAMPION_VIA, via)
    if client.get_model_version(name, new).tags.get(TAG_ROLLED_BACK) == "true":
        client.delete_model_version_tag(name, new, TAG_ROLLED_BACK)
    if old is not None and old != new:
        client.set_model_version_tag(name, old, TAG_CHAMPION_UNTIL, now)


def _archive_destination(
    client: MlflowClient, name: str, mv: ModelVersion, folder: str | None
) -> str:
    """Folder path, or ``runs:/<run_id>`` for the version's source run."""
    if folder:
        return str(Path(folder) / name)
    if mv.run_id:
        try:
            if client.get_run(mv.run_id).info.lifecycle_stage == "active":
                return f"runs:/{mv.run_id}"
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    raise ValueError(
        f"cannot archive version {mv.version} of '{name}' before deleting it: its source run "
        f"{mv.run_id or '(none)'} is gone and no archive folder is set; pass archive_dir "
        "(CLI: --archive-dir) or set registry.archive_dir. Nothing was deleted."
    )


def _archive_record(mv: ModelVersion) -> dict[str, Any]:
    return {
        "model_name": mv.name,
        "version": str(mv.version),
        "aliases": list(mv.aliases),
        "tags": dict(mv.tags),
        "run_id": mv.run_id,
        "source": mv.source,
        "status": mv.status,
        "description": mv.description,
        "created": iso_from_millis(mv.creation_timestamp),
        "last_updated": iso_from_millis(mv.last_updated_timestamp),
        "deleted_at": utc_now(),
    }


def _write_archive(client: MlflowClient, record: dict[str, Any], destination: str) -> str:
    filename = f"version-{record['version']}.json"
    if destination.startswith("runs:/"):
        run_id = destination.removeprefix("runs:/")
        client.log_dict(run_id, record, f"{ARCHIVE_ARTIFACT_DIR}/{filename}")
        return f"{destination}/{ARCHIVE_ARTIFACT_DIR}/{filename}"
    folder = Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    if path.exists():  # never overwrite an earlier record
        stamp = record["deleted_at"].replace(":", "")
        path = folder / f"version-{record['version']}-{stamp}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return str(path)
