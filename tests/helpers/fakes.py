"""Small stand-ins shared by tests: a text stream that says whether it is a terminal, and
broken store files (a folder in place of a file, an unreadable file)."""

from __future__ import annotations

import io
from pathlib import Path


class Stream(io.StringIO):
    """A text stream whose ``isatty()`` answers ``tty``."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def folder(path: Path) -> None:
    """A folder where a store file should be."""
    path.mkdir(parents=True)


def unreadable(path: Path) -> None:
    """An empty file nobody but root can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    path.chmod(0)
