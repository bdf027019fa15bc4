"""How the inference pipeline is packaged as an MLflow model (``log_model`` arguments)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions the packaged pipeline imports when it loads and predicts.
RUNTIME_DISTRIBUTIONS = (
    "mlflow",
    "kedro",
    "kedro-datasets",
    "kedro-mlflow",
    "torch",
    "torchvision",
    "open_clip_torch",
    "numpy",
    "pandas",
    "pyarrow",
    "pillow",
    "scikit-learn",
    "scipy",
    "pydantic",
    "fsspec",
    "s3fs",
    "tqdm",
    "cloudpickle",
)

MODEL_NAME_IN_RUN = "detector"


def pip_requirements() -> list[str]:
    """Pinned requirements of the packaged model, from the versions installed here.

    Explicit rather than inferred: MLflow's inference loads the model in a subprocess, which
    is slow and misses imports that happen only at predict time.
    """
    pins = []
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def code_paths() -> list[str]:
    """The package itself travels with the model, so loading needs no install of it."""
    return [str(Path(__file__).resolve().parents[1])]


def model_signature() -> Any:
    """Input: ``image_path`` and/or ``image_bytes`` (base64), optional ``image_id``.

    Output: one row per input row (see :data:`deepfake_kedro.inference.PREDICTION_COLUMNS`).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    inputs = Schema(
        [
            ColSpec(DataType.string, "image_id", required=False),
            ColSpec(DataType.string, "image_path", required=False),
            ColSpec(DataType.string, "image_bytes", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.string, "image_id", required=False),
            ColSpec(DataType.string, "image_path", required=False),
            ColSpec(DataType.double, "fake_probability", required=False),
            ColSpec(DataType.boolean, "is_fake", required=False),
            ColSpec(DataType.string, "prediction"),
            ColSpec(DataType.double, "threshold"),
            ColSpec(DataType.string, "content_hash", required=False),
            ColSpec(DataType.string, "error", required=False),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_model_kwargs() -> dict[str, Any]:
    """Arguments kedro-mlflow passes to ``mlflow.pyfunc.log_model`` for the detector."""
    return {
        "name": MODEL_NAME_IN_RUN,
        "signature": model_signature(),
        "code_paths": code_paths(),
        "pip_requirements": pip_requirements(),
    }
