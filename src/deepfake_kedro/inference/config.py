"""Typed parameters of scoring images with a trained detector (``params:inference``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deepfake_kedro.features.config import ExtractionConfig


def _serving_runtime() -> ExtractionConfig:
    # Scoring runs inside a model server too: no worker processes, no progress bar.
    return ExtractionConfig(batch_size=32, num_workers=0, progress=False)


class InferenceConfig(BaseModel):
    """How images are read and scored.

    Attributes:
        threshold: Decision threshold on the fake probability. ``None`` (default) uses the
            operating threshold that validation chose on the validation split.
        on_unreadable: ``flag`` (default) returns a row with ``error`` set and no score for an
            image that cannot be read or decoded; ``fail`` raises, naming every such image.
        base_dir: Folder or URI that relative ``image_path`` values are resolved against;
            ``None``: the current working directory (the batch pipeline's input dataset makes
            paths absolute against the manifest's folder before they get here).
        storage_options: fsspec options for remote paths (``s3://``), e.g.
            ``{client_kwargs: {endpoint_url: ...}}``; credentials come from the environment.
        max_image_mb: Images larger than this are refused (a guard for servers).
        chunk_size: Rows the batch pipeline scores per call of the model, bounding memory.
        runtime: Batch size, device, precision of the backbones while scoring.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float | None = Field(None, ge=0, le=1)
    on_unreadable: Literal["flag", "fail"] = "flag"
    base_dir: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    max_image_mb: float = Field(50.0, gt=0)
    chunk_size: int = Field(512, ge=1)
    runtime: ExtractionConfig = Field(default_factory=_serving_runtime)
