"""inference_model: the pipeline inside the registered MLflow model (images in, predictions out).

A pipeline package of its own so that ``kedro run --pipelines inference_model`` (which imports
only the pipelines it asks for) and ``kedro registry describe inference_model`` find it; its
nodes live with the batch-scoring ones in :mod:`deepfake_kedro.pipelines.inference`.
"""

from deepfake_kedro.pipelines.inference.pipeline import create_model_pipeline as create_pipeline

__all__ = ["create_pipeline"]
