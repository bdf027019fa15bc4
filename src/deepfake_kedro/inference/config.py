"""Typed parameters of scoring images with a trained detector (``params:inference``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deepfake_kedro.features.config import ExtractionConfig
from deepfake_kedro.inference.paths import normalise_root


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
        allowed_roots: Where an ``image_path`` may point: absolute local folders and URL
            prefixes (``s3://bucket/incoming/``, ``https://images.example.com/public/``).
            Anything else (``/etc/passwd``, ``..`` or a symlink out of a root, an ``http://``
            URL not listed) gives an error row and is never read; ``image_bytes`` is always
            accepted. Packaged with the model, so it is what a served model may read.
        max_image_mb: Images larger than this are refused (a guard for servers).
        chunk_size: Rows the batch pipeline scores per call of the model, bounding memory.
        runtime: Batch size, device, precision of the backbones while scoring.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float | None = Field(None, ge=0, le=1)
    on_unreadable: Literal["flag", "fail"] = "flag"
    base_dir: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    allowed_roots: list[str] = Field(default_factory=list)
    max_image_mb: float = Field(50.0, gt=0)
    chunk_size: int = Field(512, ge=1)
    runtime: ExtractionConfig = Field(default_factory=_serving_runtime)

    @field_validator("allowed_roots")
    @classmethod
    def _roots_are_absolute(cls, roots: list[str]) -> list[str]:
        for root in roots:
            normalise_root(root)  # raises, naming inference.allowed_roots and the entry
        return roots
