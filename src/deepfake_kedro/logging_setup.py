"""Console output that suits where it goes: rich on a terminal, full plain lines elsewhere.

``conf/logging.yml`` declares two console handlers, Kedro's ``RichHandler`` and a plain
``logging.StreamHandler``, and takes each one's level from here: the one that does not fit
the process's stdout is silenced. On a terminal (or in Jupyter) rich renders as usual; in a
file, a pipe or CI every record is one line at full width, where rich would wrap it at 80
columns and pad it with spaces. (Kedro only accepts handler classes from ``logging`` and
``kedro.logging`` in that file, so the choice is made through ``ext://`` values.)

Progress follows the same rule: a tqdm bar where someone watches (:func:`show_progress_bar`),
otherwise log lines every so many images, never both.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

# Above CRITICAL: a handler at this level never emits.
SILENT = logging.CRITICAL + 10


def interactive(stream: TextIO | None) -> bool:
    """Whether ``stream`` is watched by a person: a terminal, or a Jupyter kernel's output."""
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # a closed stream
        return False
    return _in_jupyter()


def _in_jupyter() -> bool:
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def show_progress_bar(requested: bool) -> bool:
    """Whether to draw a progress bar (on stderr, as tqdm does): asked for, and watched."""
    return bool(requested) and interactive(sys.stderr)


# Read by conf/logging.yml when Kedro configures logging (at import, before any output).
ON_TERMINAL: bool = interactive(sys.stdout)
RICH_LEVEL: int = logging.NOTSET if ON_TERMINAL else SILENT
PLAIN_LEVEL: int = SILENT if ON_TERMINAL else logging.NOTSET
