"""HTTP training API: submit, follow, cancel training and validation jobs; list and deploy models.

Modules: ``config`` (settings from ``conf/<env>/api.yml`` and the environment), ``security``
(bearer tokens, dataset-path checks, body-size limit), ``jobs`` (the SQLAlchemy job store),
``worker`` (runs each job as its own ``kedro run`` process), ``progress`` (the Kedro hook the
job process reports through) and ``app`` (the FastAPI application). ``kedro api serve``
starts it. Models live only in the MLflow registry; the job store only records jobs.
"""
