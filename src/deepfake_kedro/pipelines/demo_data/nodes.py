"""Nodes of the demo_data pipeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pandas as pd
from PIL import Image

from deepfake_kedro.demo import DemoConfig, plan_manifest, render_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIX = ".png"


def generate_demo_data(
    params: DemoConfig,
) -> tuple[pd.DataFrame, dict[str, Callable[[], Image.Image]]]:
    """Plan the demo manifest and return lazily rendered images keyed by partition id.

    Images are rendered one at a time while the catalog saves them, so memory stays flat.

    Args:
        params: ``demo_data`` parameters (validated by Kedro before the run).

    Returns:
        The manifest and ``{image path without .png: callable returning the image}``.
    """
    manifest = plan_manifest(params)
    rows = manifest.to_dict("records")
    step = max(1, len(rows) // 10)
    progress = {"done": 0, "started": 0.0}

    def render(index: int) -> Callable[[], Image.Image]:
        def _render() -> Image.Image:
            if progress["done"] == 0:
                progress["started"] = time.perf_counter()
            image = render_image(rows[index], params)
            progress["done"] += 1
            done = progress["done"]
            if done % step == 0 or done == len(rows):
                rate = done / max(time.perf_counter() - progress["started"], 1e-9)
                logger.info("Rendered %d/%d demo images (%.1f img/s)", done, len(rows), rate)
            return image

        return _render

    images = {}
    for index, row in enumerate(rows):
        path = row["image_path"]
        if not path.endswith(IMAGE_SUFFIX):
            raise ValueError(f"demo image path {path!r} does not end in {IMAGE_SUFFIX}")
        images[path[: -len(IMAGE_SUFFIX)]] = render(index)
    return manifest, images
