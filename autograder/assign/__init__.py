"""Building an assignment: master notebook -> student notebook + autograder zip."""

from .build import BuildResult, build

__all__ = ["BuildResult", "build"]
