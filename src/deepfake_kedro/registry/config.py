"""Typed parameters of the model registry (``params:registry``).

Build them with ``RegistryConfig.model_validate(params)`` so that a bad value or a typo'd key
fails before the run starts, with the offending field named in the error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deepfake_kedro.registry.vocabulary import MODEL_NAME


class RegistryConfig(BaseModel):
    """How versions of the detector are registered, promoted and cleaned up.

    Attributes:
        model_name: Registered model name in MLflow.
        promotion_metric: Metric compared between challenger and champion; read from the
            ``gate.<promotion_metric>`` version tag that registration writes.
        promotion_margin: A challenger is auto-promoted only if its metric beats the
            champion's by at least this much (``0`` means "no worse than the champion").
        greater_is_better: Direction of ``promotion_metric``; set ``false`` for error-like
            metrics such as ``test_eer``.
        allow_different_test_data: Compare versions whose ``dataset_fingerprint`` tags differ
            (or are missing). Off by default: metrics on different test sets are not
            comparable, so such a challenger is not auto-promoted.
        keep_versions: Cleanup keeps the newest this many versions (plus every aliased one).
        archive_dir: Folder for the JSON record of each version cleanup deletes. ``None``: the
            record goes to the version's source run as ``registry_archive/version-<n>.json``
            (or to the folder given to ``cleanup`` when the run is gone).
        ready_timeout_s: Seconds to wait for a new version to reach ``READY``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model_name: str = Field(MODEL_NAME, min_length=1)
    promotion_metric: str = Field("test_auc", min_length=1)
    promotion_margin: float = Field(0.0, ge=0)
    greater_is_better: bool = True
    allow_different_test_data: bool = False
    keep_versions: int = Field(10, ge=1)
    archive_dir: str | None = None
    ready_timeout_s: float = Field(300.0, gt=0)

    @field_validator("model_name")
    @classmethod
    def _no_quote(cls, value: str) -> str:
        # The name goes into MLflow search filters (name = '<model_name>').
        if "'" in value:
            raise ValueError(f"model_name must not contain a single quote; got {value!r}")
        return value
