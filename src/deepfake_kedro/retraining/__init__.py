"""Retraining: is the champion still good enough for the data we have now?

Plain modules (no Kedro); the ``retraining`` pipeline and ``kedro retrain`` / ``kedro schedule``
adapt them (``kedro retrain`` holds the project lock, :mod:`deepfake_kedro.project_lock`):

- ``config``: typed ``params:retraining`` (``RetrainingConfig``).
- ``champion``: the champion version and its training facts, read from MLflow in one place.
- ``checks``: no-champion, freshness, degradation and drift checks and the decision.
- ``drift``: embedding-distribution distances (domain-classifier AUC, MMD).
- ``features``: champion-backbone features of rows through the feature cache.
- ``schedule``: the APScheduler jobs of ``kedro schedule``.
"""
