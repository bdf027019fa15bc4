"""Model evaluation: metrics, robustness under perturbations, fairness, gate and report.

Plain modules (no Kedro); the validation pipeline adapts them. Import from the submodules:
``evaluation.metrics``, ``evaluation.robustness``, ``evaluation.perturbations``,
``evaluation.fairness``, ``evaluation.gate``, ``evaluation.report``, ``evaluation.config``.
"""
