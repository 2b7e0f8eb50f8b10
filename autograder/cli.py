"""The `autograder` command: a thin layer over functions you can call from Python."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import UserError


class _Group(click.Group):
    """Turns UserError into one line on stderr and exit status 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"autograder: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="autograder")
def cli():
    """Build, grade and export auto-graded PyTorch labs."""


@cli.command()
@click.argument("lab")
def build(lab):
    """Build assignments/LAB into the student notebook and the autograder zip."""
    from .assign import build as build_lab

    result = build_lab(lab)
    total = sum(result.points.values())
    click.echo(f"built {lab}: {len(result.points)} questions, {total:g} points")
    click.echo(f"  student notebook: {result.student_dir}")
    click.echo(f"  autograder zip:   {result.autograder_zip}")
    click.echo(f"  solution:         {result.solution_dir}")


def main():
    cli(prog_name="autograder")


if __name__ == "__main__":
    main()
