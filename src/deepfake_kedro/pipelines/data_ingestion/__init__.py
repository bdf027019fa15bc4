"""data_ingestion: validate the manifest and images, report, split by source, fingerprint."""

from deepfake_kedro.pipelines.data_ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
