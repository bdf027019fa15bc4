"""Batch scoring lets the model read the images its own input lists, and nothing more."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from deepfake_kedro.datasets.registered_model import RegisteredDetector
from deepfake_kedro.inference import InferenceConfig, read_image_table
from deepfake_kedro.pipelines.inference.nodes import score_with_registered_model


class PackagedModel:
    """Reads images as the packaged pipeline does, with a model's default: no roots."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        table = read_image_table(frame, allowed_roots=[]).table
        return pd.DataFrame({"image_id": table["image_id"], "image_path": table["image_path"],
                             "prediction": np.where(table["error"].isna(), "real", "error"),
                             "error": table["error"]})


def png(path) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_the_listed_images_are_read_and_nothing_else_later(tmp_path):
    images = pd.DataFrame({"image_id": ["a", "b"],
                           "image_path": [png(tmp_path / "a.png"), png(tmp_path / "b.png")]})
    detector = RegisteredDetector(PackagedModel(), "deepfake-detector", "1", "models:/x/1", None)
    scores = score_with_registered_model(detector, images, InferenceConfig(chunk_size=1))
    assert scores["prediction"].tolist() == ["real", "real"], scores["error"].tolist()

    # the same model called outside the batch run refuses them
    alone = PackagedModel().predict(images)
    assert alone["error"].str.startswith("ImagePathRefused").all()
