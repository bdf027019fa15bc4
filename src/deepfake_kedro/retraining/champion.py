"""The champion version and the facts of its training, read from MLflow in one place.

Where registration records them (the names are in :mod:`deepfake_kedro.registry.vocabulary`):

- the ``champion`` alias of the registered model picks the version; its
  ``creation_timestamp`` is the model's age, its ``training_run_id`` tag (else its
  ``run_id``) the training run;
- version tags ``dataset_fingerprint``, ``gate.test_auc`` (float as text),
  ``dataset_newest_captured_at`` (UTC, newest ``captured_at`` of the training manifest;
  ``data_newest_captured_at`` on versions registered before the names were unified, else the
  training run's tag of the same name) and ``trained_at``;
- run artifacts ``checkpoint/fusion_checkpoint.pt`` (the fusion checkpoint) and
  ``data/split_manifest.parquet`` (the split manifest it was trained on).

A missing tag or artifact is not an error here: it is recorded in ``ChampionInfo.problems``
and the checks say what they could not evaluate (a champion without training data triggers
a retraining).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from deepfake_kedro.registry.operations import find_version
from deepfake_kedro.registry.vocabulary import (
    CHAMPION,
    CHECKPOINT_ARTIFACTS,
    MANIFEST_ARTIFACT,
    TAG_FINGERPRINT,
    TAG_TRAINING_RUN_ID,
    gate_tag,
    newest_captured_at_tag,
    version_uri,
)
from deepfake_kedro.values import finite_or_none, iso

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_ARTIFACTS",
    "MANIFEST_ARTIFACT",
    "ChampionInfo",
    "load_champion",
    "newest_captured_at",
]

TAG_TEST_AUC = gate_tag("test_auc")


@dataclass
class ChampionInfo:
    """What the retraining checks know about the champion.

    Attributes:
        model_name: Registered model name.
        version: Champion version.
        run_id: Training run of the version (``None`` if the version has none).
        created_at: When the version was registered (UTC); the model's age.
        tags: All version tags.
        fingerprint: ``dataset_fingerprint`` of its training data, if recorded.
        test_auc: ``gate.test_auc``, if recorded.
        newest_captured_at: Newest ``captured_at`` of its training data (UTC), if known.
        checkpoint: The fusion checkpoint, if the run has it.
        training_manifest: The split manifest it was trained on, if the run has it.
        problems: What could not be read, one sentence each.
    """

    model_name: str
    version: str
    run_id: str | None
    created_at: datetime
    tags: dict[str, str]
    fingerprint: str | None = None
    test_auc: float | None = None
    newest_captured_at: datetime | None = None
    checkpoint: dict[str, Any] | None = None
    training_manifest: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts (no checkpoint or manifest)."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "run_id": self.run_id,
            "created_at": iso(self.created_at),
            "dataset_fingerprint": self.fingerprint,
            "test_auc": self.test_auc,
            "newest_captured_at": iso(self.newest_captured_at),
            "has_checkpoint": self.checkpoint is not None,
            "n_training_images": None
            if self.training_manifest is None
            else int(len(self.training_manifest)),
            "problems": list(self.problems),
        }


def load_champion(client: MlflowClient, model_name: str) -> ChampionInfo | None:
    """The ``champion`` version of ``model_name`` with its training facts, or ``None``.

    Args:
        client: Client on the tracking and registry store.
        model_name: Registered model name.

    Returns:
        ``None`` when the model is not registered or has no champion.
    """
    version = find_version(client, model_name, CHAMPION, None)
    if version is None:
        logger.info("'%s' has no %s (or is not registered)", model_name, CHAMPION)
        return None
    tags = dict(version.tags or {})
    info = ChampionInfo(
        model_name=model_name,
        version=str(version.version),
        # The run that trained it: a version registered again later
        # (`kedro run --pipelines registration`) names it in its training_run_id tag.
        run_id=tags.get(TAG_TRAINING_RUN_ID) or version.run_id or None,
        created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
        tags=tags,
        fingerprint=tags.get(TAG_FINGERPRINT) or None,
    )
    where = f"champion version {info.version} of '{model_name}'"
    info.test_auc = finite_or_none(tags.get(TAG_TEST_AUC))
    if info.test_auc is None:
        info.problems.append(f"{where} has no numeric '{TAG_TEST_AUC}' version tag")
    if info.fingerprint is None:
        info.problems.append(f"{where} has no '{TAG_FINGERPRINT}' version tag")
    info.newest_captured_at = _timestamp(newest_captured_at_tag(tags))
    if info.run_id is None:
        info.problems.append(f"{where} has no training run: its training data is unknown")
        return info
    if info.newest_captured_at is None:
        run_tags = _run_tags(client, info.run_id)
        info.newest_captured_at = _timestamp(newest_captured_at_tag(run_tags))
    info.checkpoint = _packaged_checkpoint(model_name, info.version)
    with tempfile.TemporaryDirectory(prefix="champion-") as folder:
        checkpoint_path = (
            None
            if info.checkpoint is not None
            else _download_first(client, info.run_id, CHECKPOINT_ARTIFACTS, folder)
        )
        if info.checkpoint is None and checkpoint_path is None:
            info.problems.append(
                f"{where}: its run {info.run_id} has no artifact "
                f"{' or '.join(CHECKPOINT_ARTIFACTS)}, so it cannot score new data"
            )
        elif info.checkpoint is None:
            info.checkpoint = _read_checkpoint(checkpoint_path)
        manifest_path = _download_first(client, info.run_id, (MANIFEST_ARTIFACT,), folder)
        if manifest_path is None:
            info.problems.append(
                f"champion has no recorded training data: run {info.run_id} of {where} has "
                f"no artifact {MANIFEST_ARTIFACT}"
            )
        else:
            info.training_manifest = pd.read_parquet(manifest_path)
    if info.newest_captured_at is None and info.training_manifest is not None:
        info.newest_captured_at = newest_captured_at(info.training_manifest)
    return info


def newest_captured_at(manifest: pd.DataFrame) -> datetime | None:
    """Newest ``captured_at`` of a validated manifest (UTC), or ``None`` without one."""
    if "captured_at" not in manifest.columns or manifest.empty:
        return None
    times = pd.to_datetime(manifest["captured_at"], utc=True, errors="coerce", format="ISO8601")
    times = times.dropna()
    return None if times.empty else times.max().to_pydatetime()


def _download_first(
    client: MlflowClient, run_id: str, paths: tuple[str, ...], folder: str
) -> Path | None:
    for path in paths:
        parent = str(Path(path).parent)
        try:
            listed = {a.path for a in client.list_artifacts(run_id, parent)}
        except (MlflowException, OSError) as error:
            logger.warning("cannot list artifacts of run %s under %s: %s", run_id, parent, error)
            continue
        if path in listed:
            local = client.download_artifacts(run_id, path, folder)
            logger.info("read %s of run %s", path, run_id)
            return Path(local)
    return None


def _packaged_checkpoint(model_name: str, version: str) -> dict[str, Any] | None:
    """The checkpoint inside the registered model itself (what the version really serves)."""
    from kedro.io import DatasetError

    from deepfake_kedro.datasets.registered_model import load_registered_checkpoint

    try:
        return load_registered_checkpoint(version_uri(model_name, version), missing_ok=True)
    except (DatasetError, MlflowException, OSError) as error:
        logger.info("version %s has no packaged checkpoint (%s); trying its run", version, error)
        return None


def _read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _run_tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    try:
        return dict(client.get_run(run_id).data.tags)
    except MlflowException:
        return {}


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = pd.to_datetime(value, utc=True, errors="coerce")
    return None if pd.isna(parsed) else parsed.to_pydatetime()
