"""`autograder report OUT`: register with `cli.add_command(report_cmd)`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("out", type=click.Path(path_type=Path))
def report_cmd(out):
    """Write OUT/report/index.html (class statistics and plots) and OUT/feedback/*.html."""
    from .build import write_report

    click.echo(str(write_report(out)))
