"""`autograder review`: staff decide on submissions the source screen flagged.

A flagged submission earns 0 everywhere until a person accepts it. The decision is recorded in
OUT/reviews.json (who, when, why) and every derived file is rewritten from the records, so
final_grades.csv, results/*.json, feedback and the LMS exports agree with it.
"""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path

from ..errors import UserError
from ..results import Review, SubmissionResult, load_batch, save_review


def flagged(out: Path) -> list[SubmissionResult]:
    return [r for r in load_batch(Path(out)) if r.flagged]


def decide(out: Path, files: list[str], decision: str, *, by: str | None = None, reason: str = "",
           autograder_zip: Path) -> list[SubmissionResult]:
    """Record `decision` ("accept" or "reject") for each flagged file named (source or file
    name), then rewrite the batch's derived files. Returns the updated results."""
    if decision not in ("accept", "reject"):
        raise UserError("the decision must be accept or reject")
    out = Path(out)
    results = load_batch(out)
    if not results:
        raise UserError(f"{out} holds no graded batch (run `autograder grade` first)")
    review = Review(decision=decision, by=by or getpass.getuser(),
                    at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), reason=reason)
    for name in files:
        matches = [r for r in results if name in (r.source, r.file)]
        if not matches:
            raise UserError(f"no submission named {name!r} in {out}")
        for r in matches:
            if not r.flagged:
                raise UserError(f"{name} was not flagged: there is nothing to review")
            save_review(out, r.digest, review)
    refresh_outputs(out, autograder_zip)
    return load_batch(out)


def refresh_outputs(out: Path, autograder_zip: Path) -> None:
    """Rewrite final_grades.csv, results/ and existing feedback from the records and reviews."""
    from .autograder_zip import load_autograder
    from .outputs import load_ag_config, write_feedback, write_final_grades, write_results_json

    autograder = load_autograder(Path(autograder_zip))
    try:
        results = load_batch(out)
        config = load_ag_config(autograder)
        for r in results:
            write_results_json(out, r, autograder, config)
            if (out / "feedback").is_dir():
                write_feedback(out, r)
        write_final_grades(out, results, autograder)
    finally:
        autograder.cleanup()
