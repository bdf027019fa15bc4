"""A read-only catalog entry for the MLflow model registry the retraining checks read."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError


class MlflowRegistryDataset(AbstractDataset[None, Any]):
    """Loads an ``mlflow.MlflowClient`` on the tracking and registry URIs of the run.

    kedro-mlflow sets them from ``conf/<env>/mlflow.yml`` when the context is created, so the
    node reading the registry never deals with URIs or credentials.
    """

    def load(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient()

    def save(self, data: None) -> None:
        raise DatasetError("the MLflow registry is read-only in the catalog")

    def _describe(self) -> dict[str, Any]:
        return {}

    def _exists(self) -> bool:
        return True
