"""Batch outputs derived from the result records: final_grades.csv (otter's own writer),
results/<submission>.json (Gradescope's schema) and feedback/<submission>.md.

final_grades.csv and results.json go through otter's GradingResults, rebuilt from our records,
so their columns and conventions are otter's by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..results import GRADED, Status, SubmissionResult, write_atomic
from .autograder_zip import Autograder

COMPLETED = "Completed"   # otter's grading_status for a normally graded file


def _otter_results(result: SubmissionResult, autograder: Autograder):
    from otter.test_files import GradingResults
    from otter.test_files.abstract_test import TestCaseResult

    if not result.questions or result.held:   # a flagged submission earns 0 until accepted
        gr = GradingResults.without_results(Exception(result.status_text))
    else:
        files = []
        for question in autograder.questions:
            tf = question.test_file()
            record = result.question(question.name)
            tests = record.tests if record is not None else ()
            tf.test_case_results = [
                TestCaseResult(test_case=case, passed=t.passed,
                               message="✅ Test case passed" if t.passed else f"❌ Test case failed\n{t.hint}")
                for case, t in zip(tf.test_cases, tests)
            ]
            files.append(tf)
        gr = GradingResults(files)
    gr.file = result.file
    return gr


def grading_status(result: SubmissionResult) -> str:
    if not result.questions or result.flagged:
        return result.status_text
    problems = [f"{q.status_text} in {q.name}" for q in result.questions if not q.graded_normally]
    if result.status != GRADED:
        problems.insert(0, result.status_text)
    return "; ".join(problems) if problems else COMPLETED


def write_final_grades(out: Path, results: list[SubmissionResult], autograder: Autograder) -> Path:
    """final_grades.csv exactly as `otter grade` writes it, grading_status in plain words."""
    from otter.grade.utils import merge_scores_to_df

    df = merge_scores_to_df([_otter_results(r, autograder) for r in results])
    if "grading_status" in df.columns:   # otter only knows Completed vs an exception text
        by_file = {r.file: grading_status(r) for r in results}
        mask = df["file"] != "points-per-question"
        df.loc[mask, "grading_status"] = df.loc[mask, "file"].map(by_file)
    # file names and statuses are student-controlled text: no spreadsheet formulas (numbers
    # untouched); otter's own points-per-question row (its status is "--") stays as otter writes it
    from ..escape import safe_cell
    students = df["file"] != "points-per-question"
    for name in ("file", "grading_status"):
        if name in df.columns:
            df.loc[students, name] = df.loc[students, name].map(safe_cell)
    path = out / "final_grades.csv"
    write_atomic(path, df.to_csv(index=False))
    return path


def gradescope_results(result: SubmissionResult, autograder: Autograder, ag_config) -> dict:
    if not result.questions or result.held:
        why = Status.NEEDS_REVIEW.student if result.held else f"Your submission could not be graded: {result.status_text}."
        return {
            "score": 0.0, "execution_time": round(result.runtime_s, 3),
            "output": why,
            "tests": [{"name": "Submission", "score": 0.0, "max_score": autograder.max_points,
                       "status": "failed", "visibility": "visible",
                       "output": why}],
        }
    data = _otter_results(result, autograder).to_gradescope_dict(ag_config)
    data["execution_time"] = round(result.runtime_s, 3)
    data.setdefault("score", result.points)
    return data


def write_results_json(out: Path, result: SubmissionResult, autograder: Autograder, ag_config) -> Path:
    path = out / "results" / f"{result.key}.json"
    write_atomic(path, json.dumps(gradescope_results(result, autograder, ag_config), indent=1))
    return path


def feedback_markdown(result: SubmissionResult) -> str:
    """What a student may see: public results with hints, hidden ones as pass/fail with hints.

    File names, statuses, notes and hints may hold text the student controls: every one is
    escaped (md_text; hints keep their `code` spans, whose content Markdown shows literally)."""
    from ..escape import md_hint, md_text

    def status(x) -> str:   # with its detail, when the record has one
        return md_text(str(getattr(x, "status_text", None) or x.status))

    lines = [f"# Feedback: {md_text(result.student.original_name or result.file)}", ""]
    if not result.questions:
        lines += [f"Your submission could not be graded: {status(result)}.", "",
                  "Please check that you submitted the lab's notebook (.ipynb) or the zip made by "
                  "its last cell, and ask course staff if this looks wrong."]
        return "\n".join(lines) + "\n"
    lines += [f"**Score: {result.points:g} / {result.max_points:g}**", ""]
    if result.held:
        lines += [Status.NEEDS_REVIEW.student, "", "What the grader found:"]
        lines += [f"- {md_text(f.describe())}" for f in result.findings] + [""]
    if result.note:
        lines += [f"_{md_text(result.note)}_", ""]
    for q in result.questions:
        lines.append(f"## {md_text(q.name)}: {q.points:g} / {q.max_points:g}")
        if not q.graded_normally:
            lines.append(f"- This question was not graded normally: **{status(q)}**.")
        for t in q.tests:
            mark = "passed" if t.passed else "failed"
            line = (f"- hidden test: {mark}" if t.hidden
                    else f"- test {md_hint(f'`{t.name}`')}: {mark} ({t.points:g} / {t.max_points:g})")
            if not t.passed and t.hint:
                line += f" — {md_hint(t.hint)}"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def write_feedback(out: Path, result: SubmissionResult) -> Path:
    path = out / "feedback" / f"{result.key}.md"
    write_atomic(path, feedback_markdown(result))
    return path


def load_ag_config(autograder: Autograder):
    from otter.run.run_autograder.autograder_config import AutograderConfig

    path = autograder.private_dir / "otter_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    return AutograderConfig(config)
