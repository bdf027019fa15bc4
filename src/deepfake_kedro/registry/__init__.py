"""MLflow model-registry operations: register, promote, deploy, roll back, list and clean up.

Plain modules (no Kedro); the registration pipeline, the hooks and the project commands adapt
them. Import from the submodules: ``registry.vocabulary`` (every MLflow name the project uses:
model name, aliases, run and version tags; no MLflow import), ``registry.config``
(``RegistryConfig``), ``registry.operations`` (the operations, on an ``mlflow.MlflowClient``)
and ``registry.registration`` (what the registration and re-validation hooks do).
"""
