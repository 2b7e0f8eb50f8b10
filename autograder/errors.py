"""Errors a user can hit: the CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """Something the user can fix; the message says what to do."""


class BuildError(UserError):
    """The master notebook cannot be built into a student notebook and autograder."""
