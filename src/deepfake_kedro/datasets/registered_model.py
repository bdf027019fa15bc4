"""A read-only dataset that loads a registered detector version from the MLflow registry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from deepfake_kedro.registry.operations import find_version
from deepfake_kedro.registry.vocabulary import parse_registry_uri, version_uri

__all__ = [
    "ChampionCheckpointDataset",
    "RegisteredDetector",
    "RegisteredModelDataset",
    "load_registered_checkpoint",
    "parse_registry_uri",
]

logger = logging.getLogger(__name__)


@dataclass
class RegisteredDetector:
    """A loaded MLflow pyfunc model and which registered version it is."""

    model: Any
    name: str
    version: str
    model_uri: str
    run_id: str | None
    aliases: tuple[str, ...] = ()


class RegisteredModelDataset(AbstractDataset[None, RegisteredDetector]):
    """Load ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` as a pyfunc model.

    The tracking and registry URIs are the ones kedro-mlflow set from ``mlflow.yml``.

    Catalog entry::

        registered_detector:
          type: deepfake_kedro.datasets.RegisteredModelDataset
          model_uri: ${runtime_params:model_uri,'models:/deepfake-detector@champion'}

    Args:
        model_uri: A registry URI with an alias or a version number.
        metadata: Free-form metadata.
    """

    def __init__(self, *, model_uri: str, metadata: dict[str, Any] | None = None) -> None:
        self._model_uri = str(model_uri)
        self.metadata = metadata
        self._name, self._alias, self._version = parse_registry_uri(self._model_uri)

    def load(self) -> RegisteredDetector:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        detail = "not found"
        try:
            mv = find_version(MlflowClient(), self._name, self._alias, self._version)
        except MlflowException as exc:
            mv, detail = None, getattr(exc, "message", str(exc))
        if mv is None:
            what = f"alias '{self._alias}'" if self._alias else f"version {self._version}"
            raise DatasetError(
                f"no {what} of registered model '{self._name}' in the registry at "
                f"{mlflow.get_registry_uri()} ({detail}). "
                "Train and register one with `kedro run`, deploy a version with "
                "`kedro models deploy <version>`, or pick another with "
                "--params model_uri=models:/<name>/<version>; `kedro models list` shows them"
            )
        uri = version_uri(self._name, mv.version)
        logger.info("Loading %s (%s) ...", uri, self._model_uri)
        model = mlflow.pyfunc.load_model(uri)
        return RegisteredDetector(
            model=model,
            name=self._name,
            version=str(mv.version),
            model_uri=uri,
            run_id=mv.run_id,
            aliases=tuple(getattr(mv, "aliases", ()) or ()),
        )

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"RegisteredModelDataset({self._model_uri!r}) is read-only: versions are created "
            "by the registration pipeline"
        )

    def _describe(self) -> dict[str, Any]:
        return {"model_uri": self._model_uri}


class ChampionCheckpointDataset(AbstractDataset[None, dict | None]):
    """The fusion checkpoint inside a registered version (default: the champion), or ``None``.

    ``None`` when the model or the alias does not exist yet (the first registration), so the
    registration pipeline can tell "no champion" from an error. The checkpoint gets a
    ``registry_version`` key naming the version it came from.

    Args:
        model_uri: ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.
        metadata: Free-form metadata.
    """

    def __init__(self, *, model_uri: str, metadata: dict[str, Any] | None = None) -> None:
        self._model_uri = str(model_uri)
        self.metadata = metadata
        self._name, self._alias, self._version = parse_registry_uri(self._model_uri)

    def load(self) -> dict | None:
        return load_registered_checkpoint(self._model_uri, missing_ok=True)

    def save(self, data: Any) -> None:
        raise DatasetError("ChampionCheckpointDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"model_uri": self._model_uri}


def load_registered_checkpoint(model_uri: str, *, missing_ok: bool = False) -> dict | None:
    """The fusion checkpoint packaged in a registered version, with ``registry_version`` and
    ``registry_model_uri`` added.

    Args:
        model_uri: ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.
        missing_ok: Return ``None`` (instead of raising) when the model, alias or version
            does not exist.

    Raises:
        DatasetError: if the version does not exist (unless ``missing_ok``) or holds no
            fusion checkpoint.
    """
    import tempfile
    from pathlib import Path

    import mlflow
    import torch
    from mlflow import MlflowClient

    from deepfake_kedro.training.checkpoint import from_registry

    name, alias, version = parse_registry_uri(model_uri)
    mv = find_version(MlflowClient(), name, alias, version)
    if mv is None:
        if missing_ok:
            logger.info("No %s in the registry yet", model_uri)
            return None
        raise DatasetError(
            f"{model_uri} is not in the registry at {mlflow.get_registry_uri()}: "
            "`kedro models list` shows the registered versions"
        )
    with tempfile.TemporaryDirectory() as tmp:
        # Only the pipeline's artifacts (checkpoint, threshold, params), not the code.
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{version_uri(name, mv.version)}/artifacts", dst_path=tmp
            )
        )
        found = sorted(local.glob("fusion_checkpoint*"))
        if not found:
            raise DatasetError(
                f"version {mv.version} of '{name}' has no fusion checkpoint among its "
                f"artifacts ({', '.join(p.name for p in local.glob('*')) or 'none'}); "
                "it was not registered by this project's registration pipeline"
            )
        checkpoint = torch.load(found[0], map_location="cpu", weights_only=True)
    return from_registry(checkpoint, str(mv.version), version_uri(name, mv.version))

