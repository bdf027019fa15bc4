"""Wiring of the inference pipelines.

- ``create_model_pipeline()``: images in, predictions out, from the training outputs
  (``fusion_checkpoint``, ``validation_results``). Bound to training with kedro-mlflow's
  ``pipeline_ml_factory`` (see ``pipeline_registry``), it *is* the registered MLflow model.
- ``create_pipeline()`` (``kedro run --pipelines inference``): batch scoring of a manifest or
  folder with a registered version (``champion`` unless ``--params model_uri=...``), writing
  the scores with the version that produced them.
"""

from kedro.pipeline import Node, Pipeline

from deepfake_kedro.pipelines.inference.nodes import (
    read_images,
    score_images,
    score_with_registered_model,
)

# The dataset a caller of the registered model provides (the pyfunc's model_input).
INPUT_NAME = "inference_images"


def create_model_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                read_images,
                inputs=[INPUT_NAME, "params:inference"],
                outputs="inference_batch",
                name="read_images_node",
            ),
            Node(
                score_images,
                inputs=[
                    "inference_batch",
                    "fusion_checkpoint",
                    "validation_results",
                    "params:inference",
                ],
                outputs="inference_predictions",
                name="score_images_node",
            ),
        ],
        tags=["inference"],
    )


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                score_with_registered_model,
                inputs=["registered_detector", INPUT_NAME, "params:inference"],
                outputs="batch_scores",
                name="score_with_registered_model_node",
            )
        ],
        tags=["inference", "batch_scoring"],
    )
