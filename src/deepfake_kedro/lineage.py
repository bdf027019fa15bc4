"""Where a run's code came from, for MLflow tags and registry lineage."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(path: str | Path = ".") -> str | None:
    """The current git commit (with ``-dirty`` if the tree has changes), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
