"""Deterministic synthetic real/fake face images for the demo pipeline and the tests.

``python -m deepfake_kedro.demo --out data/01_raw`` writes the images and ``manifest.csv``.
"""

from deepfake_kedro.demo.generator import (
    DemoConfig,
    plan_manifest,
    render_image,
    write_demo_dataset,
)

__all__ = ["DemoConfig", "plan_manifest", "render_image", "write_demo_dataset"]
