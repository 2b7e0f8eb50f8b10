"""Where things live in a project checkout (overridable for tests)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The folder holding assignments/, student_templates/ and otter_config.json."""
    env = os.environ.get("AUTOGRADER_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "assignments").is_dir() and (folder / "otter_config.json").is_file():
            return folder
    return here
