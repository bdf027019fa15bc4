"""HTTP training API: submit, follow, cancel training and validation jobs; list and deploy models.

Modules: ``config`` (settings from ``conf/<env>/api.yml`` and the environment), ``security``
(bearer tokens, dataset-path checks, body-size limit), ``jobs`` (the SQLAlchemy job store),
``worker`` (runs each job as its own ``kedro run`` process), ``progress`` (the Kedro hook the
job process reports through), ``schemas`` (request and response bodies), ``dependencies``
(the project, settings, store and MLflow client the routes get through ``Depends``),
``routes`` (one router each for jobs, models and health) and ``app`` (``create_app``, which
assembles them). ``kedro api serve`` starts it. Models live only in the MLflow registry;
the job store only records jobs.
"""
