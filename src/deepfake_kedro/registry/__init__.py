"""MLflow model-registry operations: register, promote, deploy, roll back, list and clean up.

Plain modules (no Kedro); the registration pipeline and the project commands adapt them.
Import from the submodules: ``registry.config`` (``RegistryConfig``, no MLflow import) and
``registry.operations`` (the operations, on an ``mlflow.MlflowClient``).
"""
