"""demo_data: write a synthetic, labelled real/fake image set and its manifest to 01_raw."""

from deepfake_kedro.pipelines.demo_data.pipeline import create_pipeline

__all__ = ["create_pipeline"]
