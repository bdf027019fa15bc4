"""The project bootstrap: find the Kedro project, load its configuration, open a session.

One route to the project's configuration for the pipelines (the list of branches), the
project commands and the API, through public Kedro APIs only:

- :func:`find_project` -- the project root: ``DEEPFAKE_KEDRO_PROJECT_PATH`` when set, else
  the nearest Kedro project above ``start`` (default: the current folder).
- :func:`deployed_project` -- the project of a process started outside it (an Airflow task):
  ``DEEPFAKE_KEDRO_PROJECT_PATH``, else the project the package is installed from; never the
  working directory.
- :func:`config_loader` / :func:`parameters` -- the project's own config loader (its
  settings: custom resolvers, soft-merged parameters) for an environment and runtime
  parameters, without a session (no hooks, no MLflow set-up); extra config patterns (the
  API's ``api.yml``) go through the same loader.
- :func:`parse_params` -- runtime parameters from ``--params`` text, as ``kedro run`` reads it.
- :func:`session` -- ``bootstrap_project`` + ``KedroSession.create``.
- :func:`branches` -- the feature branches: the keys of ``feature_extraction.backbones``
  (in order), without those set to ``enabled: false``; ``trainable=False`` / ``True`` keeps
  the frozen ones (extracted and cached) / those that learn from pixels inside
  ``ensemble_training`` (``train_mode: finetune``). The pipelines are built from it.

:class:`ProjectHooks` records the configuration of the session that is running, so that
the pipelines follow that session's environment and ``--params`` (and are rebuilt when a
later session in the same process lists other branches).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.utils import find_kedro_project

logger = logging.getLogger(__name__)

PROJECT_PATH_ENV = "DEEPFAKE_KEDRO_PROJECT_PATH"
BACKBONES_KEY = ("feature_extraction", "backbones")


class ProjectNotFoundError(RuntimeError):
    """No Kedro project where one was looked for."""


def find_project(start: Path | str | None = None) -> Path:
    """The project root: ``$DEEPFAKE_KEDRO_PROJECT_PATH``, else the nearest Kedro project
    at or above ``start`` (default: the current folder).

    Raises:
        ProjectNotFoundError: naming where it looked and how to point at the project.
    """
    configured = os.environ.get(PROJECT_PATH_ENV)
    if configured:
        path = Path(configured).expanduser().resolve()
        if find_kedro_project(path) != path:
            raise ProjectNotFoundError(
                f"{PROJECT_PATH_ENV}={configured} is not a Kedro project (no pyproject.toml "
                "with [tool.kedro] there): point it at the project root or unset it"
            )
        return path
    here = Path(start or Path.cwd()).expanduser().resolve()
    found = find_kedro_project(here)
    if found is None:
        raise ProjectNotFoundError(
            f"no Kedro project found in {here} or above: run this inside the project or set "
            f"{PROJECT_PATH_ENV} to its root"
        )
    return Path(found).resolve()


def installed_project() -> Path | None:
    """The project the package is installed from (an editable install of ``src/``), if any.

    A package installed from a wheel lives in ``site-packages``, with no project around it.
    """
    import deepfake_kedro

    root = Path(deepfake_kedro.__file__).resolve().parents[2]
    found = find_kedro_project(root)
    return Path(found).resolve() if found is not None and Path(found) == root else None


def deployed_project() -> Path:
    """The project of a process started outside it (an Airflow task on a worker):
    ``$DEEPFAKE_KEDRO_PROJECT_PATH``, else :func:`installed_project`; never the working
    directory, which a scheduler chooses.

    Raises:
        ProjectNotFoundError: naming the variable to set.
    """
    if os.environ.get(PROJECT_PATH_ENV):
        return find_project()
    installed = installed_project()
    if installed is None:
        raise ProjectNotFoundError(
            f"{PROJECT_PATH_ENV} is not set and the deepfake_kedro package is not installed "
            "from a project folder (pip install -e <project>): set it to the project root on "
            "every worker"
        )
    return installed


_current_project: Path | None = None
"""The project this process works on: set by :func:`session`, :func:`config_loader` and
:class:`ProjectHooks` (from the running session's context)."""


def project_root() -> Path:
    """The root of the project this process works on, for the ``${project_root:}`` resolver.

    The running session's project (so a Kedro session opened on the project from any folder,
    e.g. by an Airflow task, writes ``mlflow.db`` and logs inside the project), else
    ``$DEEPFAKE_KEDRO_PROJECT_PATH``, else the project above the current folder.
    """
    return _current_project or find_project()


def _use_project(path: Path | str) -> Path:
    global _current_project
    _current_project = Path(path).resolve()
    return _current_project


def config_loader(
    project: Path | None = None,
    env: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
    *,
    config_patterns: Mapping[str, list[str]] | None = None,
    merge_strategy: Mapping[str, str] | None = None,
    conf_source: str | None = None,
) -> Any:
    """The project's config loader (the class and arguments of its ``settings.py``).

    Args:
        project: The project root (default: :func:`find_project`).
        env: Kedro environment (``None``: the loader's ``default_run_env``).
        runtime_params: Parameters that override the configured ones, as ``--params``.
        config_patterns: Extra keys to load (e.g. ``{"api": ["api*", "api*/**"]}``), added
            to the settings' patterns.
        merge_strategy: Merge strategy of extra keys (e.g. ``{"api": "soft"}``), added to
            the settings' strategies.
        conf_source: Another configuration folder or archive than the project's ``conf/``.
    """
    from deepfake_kedro import settings

    project = _use_project(project or find_project())
    args = dict(settings.CONFIG_LOADER_ARGS)
    if config_patterns:
        args["config_patterns"] = {**args.get("config_patterns", {}), **config_patterns}
    if merge_strategy:
        args["merge_strategy"] = {**args.get("merge_strategy", {}), **merge_strategy}
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source or project / "conf"),
        env=env,
        runtime_params=dict(runtime_params or {}),
        **args,
    )


def parameters(
    project: Path | None = None,
    env: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The project's parameters for ``env`` with ``runtime_params`` applied, as for a run."""
    return dict(config_loader(project, env, runtime_params)["parameters"])


def parse_params(text: str) -> dict[str, Any]:
    """Runtime parameters from ``--params`` text, read the way ``kedro run --params`` does.

    Items ``key=value`` are separated by commas; a dotted key nests (``a.b=1`` gives
    ``{"a": {"b": 1}}``); a value is read as YAML by OmegaConf, so ``0.5`` is a float, ``3`` an
    int, ``true`` a bool, ``null`` None and anything else a string.

    Raises:
        ValueError: naming the item that is not ``key=value`` or has an empty key.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    dotlist = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(
                f"--params item {item!r} has no '=': write key=value (key2.sub=value2, ...)"
            )
        if not key.strip():
            raise ValueError(f"--params item {item!r} has an empty key: write key=value")
        dotlist.append(f"{key.strip()}={value}")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(dotlist))  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise ValueError(f"--params {text!r} cannot be read as key=value items: {err}") from err


@contextmanager
def session(
    project: Path | None = None,
    env: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
    *,
    conf_source: str | None = None,
) -> Iterator[Any]:
    """A ``KedroSession`` of the project (bootstrapped first), closed on exit.

    ``conf_source``: another configuration folder or archive than the project's ``conf/``.
    """
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project = _use_project(project or find_project())
    bootstrap_project(project)
    with KedroSession.create(
        project_path=project,
        env=env,
        runtime_params=dict(runtime_params or {}),
        conf_source=conf_source or None,
    ) as kedro_session:
        yield kedro_session


# ---------------------------------------------------------------------------- branches

_running_loader: Any = None
"""The config loader of the session that is running (set by :class:`ProjectHooks`)."""
_built_with: list[tuple[str, bool]] | None = None
"""The branches (name, trainable) the registered pipelines were last built from."""


def branches_from(params: Mapping[str, Any], *, trainable: bool | None = None) -> list[str]:
    """The enabled branches of ``params`` (``feature_extraction.backbones`` keys, in order).

    Args:
        params: The project's parameters.
        trainable: None: every branch; False: the frozen ones (their features are
            extracted and cached); True: those that learn from pixels inside
            ``ensemble_training`` (``train_mode: finetune``, explicit or the kind's default).

    Raises:
        ValueError: if there are none, or a name cannot name a branch.
    """
    if trainable is None:  # names only: no kind is imported
        return [name for name, _ in _enabled_backbones(params)]
    return [name for name, mode in _branch_layout(params) if mode == trainable]


def _branch_layout(params: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """``(branch, trainable)`` of every enabled branch, in order (see :func:`branches_from`)."""
    from deepfake_kedro.models.backbones import is_trainable  # torch: only when asked

    layout = []
    for name, config in _enabled_backbones(params):
        try:
            layout.append((name, is_trainable(config)))
        except ValueError as err:
            raise ValueError(f"feature_extraction.backbones.{name}: {err}") from err
    return layout


def _enabled_backbones(params: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(branch, entry)`` of every enabled ``feature_extraction.backbones`` entry, in order."""
    backbones = params
    for key in BACKBONES_KEY:
        backbones = backbones.get(key) if isinstance(backbones, Mapping) else None
    if not isinstance(backbones, Mapping) or not backbones:
        raise ValueError(
            "feature_extraction.backbones lists no backbone: add one entry per branch "
            "(conf/base/parameters_feature_extraction.yml)"
        )
    names = [
        name
        for name, config in backbones.items()
        if isinstance(config, Mapping) and config.get("enabled", True)
    ]
    bad = [name for name in names if not str(name).isidentifier()]
    if bad:
        raise ValueError(
            f"feature_extraction.backbones: branch names must be Python identifiers "
            f"(letters, digits, '_'), got {bad}"
        )
    if not names:
        raise ValueError(
            "every backbone under feature_extraction.backbones has enabled: false: enable one"
        )
    return [(str(name), backbones[name]) for name in names]


def branches(*, trainable: bool | None = None) -> list[str]:
    """The feature branches of the running session's configuration (else of the project's
    ``KEDRO_ENV`` environment, default ``local``); ``trainable`` as in :func:`branches_from`."""
    global _built_with
    loader = _running_loader
    if loader is None:
        loader = config_loader(env=os.environ.get("KEDRO_ENV"))
    layout = _branch_layout(loader["parameters"])
    _built_with = layout
    return [name for name, mode in layout if trainable is None or mode == trainable]


class ProjectHooks:
    """Let the pipelines follow the configuration of the session that is running."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        global _running_loader
        _use_project(context.project_path)
        _running_loader = context.config_loader
        if _built_with is None:
            return  # the pipelines are built later, from this context
        if _branch_layout(context.config_loader["parameters"]) != _built_with:
            from kedro.framework import project as kedro_project

            logger.info("The branches changed since the pipelines were built: rebuilding them")
            kedro_project.pipelines.configure(f"{kedro_project.PACKAGE_NAME}.pipeline_registry")
