"""The project's ``kedro`` commands (entry point ``kedro.project_commands``).

Operations that are not pipelines: the model registry (``kedro models ...``), and, as they
land, retraining and scheduling, the data-lake health check and the training API. Each
group lives in its own module here and is added below; ``kedro --help`` lists them under
"Project specific commands".

(The package is not called ``cli``: Kedro would take ``<package>.cli`` for a project CLI that
replaces ``kedro run``.)
"""

from __future__ import annotations

import click

from deepfake_kedro.commands.api import api
from deepfake_kedro.commands.lake import lake
from deepfake_kedro.commands.models import models
from deepfake_kedro.commands.retraining import retrain, schedule


@click.group(name="deepfake_kedro")
def commands() -> None:
    """deepfake_kedro project commands."""


commands.add_command(models)
commands.add_command(lake)
commands.add_command(retrain)
commands.add_command(schedule)
commands.add_command(api)
