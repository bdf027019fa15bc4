"""Project settings: hooks, configuration loader and its custom resolvers.

See https://docs.kedro.org/en/stable/configure/configuration_basics/.
"""

import warnings

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from deepfake_kedro.api.progress import ProgressHooks
from deepfake_kedro.cache_use import CacheUseHooks
from deepfake_kedro.hooks import (
    MlflowLineageHooks,
    ProblemReportHooks,
    ProjectLockHooks,
    RegistrationHooks,
    RevalidationHooks,
)
from deepfake_kedro.lake.hooks import LakeHooks
from deepfake_kedro.project import ProjectHooks, project_root

# Deprecation notices from inside Kedro, kedro-mlflow and OmegaConf that users cannot act on;
# each run printed a dozen of them, burying the project's own warnings.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")


def _project_root() -> str:
    """Absolute path of the project, so relative URIs (``sqlite:///``) work from any folder:
    the running session's project (:func:`deepfake_kedro.project.project_root`)."""
    return str(project_root())


# Parameter groups are validated by Kedro itself before any node runs: nodes annotate their
# `params:` inputs with pydantic models (kedro.validation).
HOOKS = (
    ProjectHooks(),
    ProjectLockHooks(),  # every writer run holds the project lock (deepfake_kedro.project_lock)
    ProblemReportHooks(),
    MlflowLineageHooks(),
    RegistrationHooks(),
    RevalidationHooks(),
    ProgressHooks(),
    LakeHooks(),  # a run's first contact with S3: one line naming a bad endpoint
    CacheUseHooks(),  # at the end of a run: which nodes the caches served
)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # oc.env outside credentials too (Kedro's documented opt-in): conf/s3/globals.yml reads
    # the data lake's bucket and prefix from environment variables. Never put secrets in
    # parameters: they are logged to MLflow.
    "custom_resolvers": {"project_root": _project_root, "oc.env": oc.env},
    # conf/local (or --env) may override a single nested key without repeating its siblings.
    "merge_strategy": {"parameters": "soft"},
}
