"""Tags of the active MLflow run as a Kedro dataset (kedro-mlflow has none for tags)."""

from __future__ import annotations

from typing import Any

import mlflow
from kedro.io import AbstractDataset, DatasetError

from deepfake_kedro.registry.vocabulary import MAX_TAG_LENGTH


class MlflowTagsDataset(AbstractDataset[dict, dict]):
    """Save a ``{tag: value}`` dict as tags of the active MLflow run; load the run's tags.

    Values are stringified. With no active run (tracking disabled, a unit test) saving is a
    logged no-op rather than silently creating a new run.

    Args:
        prefix: Optional prefix for every tag name.
        metadata: Free-form metadata.
    """

    def __init__(self, *, prefix: str = "", metadata: dict[str, Any] | None = None) -> None:
        self._prefix = prefix
        self.metadata = metadata

    def load(self) -> dict[str, str]:
        run = mlflow.active_run()
        if run is None:
            raise DatasetError("MlflowTagsDataset: no active MLflow run to read tags from.")
        tags = mlflow.get_run(run.info.run_id).data.tags
        return {k[len(self._prefix) :]: v for k, v in tags.items() if k.startswith(self._prefix)}

    def save(self, data: dict[str, Any]) -> None:
        if mlflow.active_run() is None:
            self._logger.info("No active MLflow run: tags not logged (%s)", sorted(data))
            return
        mlflow.set_tags({f"{self._prefix}{k}": str(v)[:MAX_TAG_LENGTH] for k, v in data.items()})

    def _exists(self) -> bool:
        return mlflow.active_run() is not None

    def _describe(self) -> dict[str, Any]:
        return {"prefix": self._prefix}
