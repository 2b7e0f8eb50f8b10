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


@cli.command()
@click.argument("lab")
def new(lab):
    """Start assignments/LAB: a master notebook with one example question per test style."""
    from .assign.scaffold import new_lab
    from .paths import project_root

    path = new_lab(lab, root=project_root())
    click.echo(f"created {path}")
    click.echo(f"  edit it in Jupyter, then: autograder build {lab}")


@cli.command()
@click.option("-a", "--autograder", "autograder_zip", required=True, type=click.Path(path_type=Path),
              help="The autograder zip (dist/LAB/autograder.zip).")
@click.option("-o", "--output-dir", "out", default=".", show_default=True, type=click.Path(path_type=Path),
              help="Folder for final_grades.csv, results/, feedback/.")
@click.option("--ext", type=click.Choice(["ipynb", "zip"]), default="ipynb", show_default=True,
              help="Which files in PATHS folders are submissions.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Wall seconds for one submission, all questions together.")
@click.option("--question-timeout", type=float, default=10.0, show_default=True,
              help="Wall seconds for one question's cells.")
@click.option("--memory-mb", type=int, default=1024, show_default=True, help="Memory per submission.")
@click.option("--max-processes", type=int, default=64, show_default=True,
              help="Processes and threads one submission may run.")
@click.option("--max-file-mb", type=int, default=64, show_default=True,
              help="Largest file, and all files together, one submission may write.")
@click.option("--max-output-mb", type=int, default=16, show_default=True,
              help="Observation data one submission may send back.")
@click.option("--containers", type=int, default=None, help="Parallel workers (default: number of cores).")
@click.option("--summaries", is_flag=True, help="Also write feedback/<submission>.md for students.")
@click.option("--no-sandbox", is_flag=True, help="Run submissions WITHOUT isolation (trusted code only).")
@click.option("-n", "--name", default=None, help="Assignment name (accepted for otter compatibility).")
@click.option("--no-network", is_flag=True, help="Accepted for otter compatibility: there is never a network.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def grade(autograder_zip, out, ext, timeout, question_timeout, memory_mb, max_processes, max_file_mb,
          max_output_mb, containers, summaries, no_sandbox, name, no_network, quiet, paths):
    """Grade every submission in PATHS (files, folders, Canvas/Moodle downloads) in isolation."""
    from .grade import Limits, grade_batch

    if min(timeout, question_timeout, memory_mb, max_processes, max_file_mb, max_output_mb) <= 0:
        raise UserError("time and size limits must be positive")
    limits = Limits(timeout=timeout, question_timeout=min(question_timeout, timeout), memory_mb=memory_mb,
                    processes=max_processes, file_size_mb=max_file_mb, output_mb=max_output_mb)
    summary = grade_batch(autograder_zip, list(paths), out, ext=ext, containers=containers,
                          limits=limits, sandbox=not no_sandbox, summaries=summaries,
                          progress=not quiet)
    problems = sum(1 for r in summary.results if r.status != "graded" or
                   any(not q.graded_normally for q in r.questions))
    click.echo(f"graded {len(summary.results)} submissions in {summary.seconds:.1f}s "
               f"({summary.graded_now} run, {summary.reused} already graded in OUT, "
               f"{problems} not graded normally)")
    errors = [r for r in summary.results if r.test_errors]
    if errors:
        tests = {(q, t) for r in errors for q, t, _ in r.test_errors}
        click.echo(f"  warning: {len(tests)} test(s) raised an error instead of a verdict, in "
                   f"{len(errors)} submission(s): a bug in the tests or a construct the secure grader "
                   f"does not support; `autograder report {summary.out}` lists them")
    click.echo(f"  grades:   {summary.final_grades}")
    click.echo(f"  results:  {summary.out / 'results'}")
    if summaries:
        click.echo(f"  feedback: {summary.out / 'feedback'}")


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--accept", "accept", multiple=True, metavar="FILE", help="Let this flagged file's score count.")
@click.option("--reject", "reject", multiple=True, metavar="FILE", help="Keep this flagged file at 0.")
@click.option("--reason", default="", help="Why (recorded with the decision).")
@click.option("--by", default=None, help="Who decides (default: your user name).")
@click.option("-a", "--autograder", "autograder_zip", type=click.Path(path_type=Path),
              default=Path("dist/differentiation/autograder.zip"), show_default=True,
              help="The autograder zip the batch was graded with (to rewrite final_grades.csv).")
def review(out, accept, reject, reason, by, autograder_zip):
    """List the submissions the source screen flagged in OUT, or record a decision on them."""
    from .grade.review import decide, flagged

    if accept or reject:
        if accept:
            decide(out, list(accept), "accept", by=by, reason=reason, autograder_zip=autograder_zip)
        if reject:
            decide(out, list(reject), "reject", by=by, reason=reason, autograder_zip=autograder_zip)
    rows = flagged(out)
    if not rows:
        click.echo(f"no flagged submissions in {out}")
        return
    for r in rows:
        state = f"{r.review.decision}ed by {r.review.by}" if r.review else "needs review (counts as 0)"
        click.echo(f"{r.source}: {state}; graded {r.graded_points:g} / {r.max_points:g}")
        for f in r.findings:
            click.echo(f"    {f.describe()}")


def _register_subcommands() -> None:
    from .export.cli import export_group
    from .report.cli import report_cmd

    cli.add_command(export_group)
    cli.add_command(report_cmd)


_register_subcommands()


def main():
    cli(prog_name="autograder")


if __name__ == "__main__":
    main()
