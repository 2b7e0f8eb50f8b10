"""The judge: plain observations + the autograder's tests -> question results.

Runs in the supervisor, never in a student's process. It rebuilds each observed name as
autograd_checks.Facts from JSON (validating every field), then runs the question's otter test
file with those Facts as the environment: the same test code and the same checks that
`otter run` executes in the kernel, so honest submissions get the same verdicts.
"""

from __future__ import annotations

import random
import re
import sys

from ..results import GRADED, QuestionResult, TestCaseResult
from .autograder_zip import Autograder

_CHECK_CALL = re.compile(r"""grader\s*\.\s*check\s*\(\s*["']([^"']+)["']""")
PROBE_SIZE = 6


def probe_inputs(seed: str) -> list[list[float]]:
    """Inputs (and a non-unit upstream gradient) for custom Functions, chosen per submission."""
    rng = random.Random(seed)
    inputs = [round(rng.uniform(-2.0, 2.0), 6) for _ in range(PROBE_SIZE)]
    upstream = [round(rng.choice((-1, 1)) * rng.uniform(1.5, 3.0), 6) for _ in range(PROBE_SIZE)]
    return [inputs, upstream]


def build_job(job_id: str, cells: list[str], autograder: Autograder, limits: dict, seed: str) -> dict:
    """What a worker needs to run one submission: its cells split into per-question segments."""
    known = {q.name for q in autograder.questions}
    segments, question_segment, segment = [], {}, 0
    for source in cells:
        segments.append(segment)
        checked = [q for q in _CHECK_CALL.findall(source) if q in known]
        for q in checked:
            question_segment[q] = segment
        if checked:
            segment += 1
    end = segment
    questions = {q.name: {"segment": question_segment.get(q.name, end), "names": list(q.names)}
                 for q in autograder.questions}
    return {"id": job_id, "cells": cells, "segments": segments, "end_segment": end,
            "questions": questions, "probe": probe_inputs(seed), "limits": limits}


class Judge:
    def __init__(self, autograder: Autograder) -> None:
        self.autograder = autograder
        files_dir = str(autograder.private_dir / "files")
        if files_dir not in sys.path:
            sys.path.insert(0, files_dir)
        import autograd_checks
        self.checks = autograd_checks

    def _env(self, facts_list, probe) -> dict:
        env = {}
        for plain in facts_list:
            facts = self.checks.facts_from_plain(plain)
            if facts.probe is not None and [list(facts.probe.inputs), list(facts.probe.upstream)] != probe:
                raise ValueError("probe inputs differ from the ones chosen")
            env[facts.name] = facts
        return env

    def question(self, question, facts_list, status: str, probe) -> QuestionResult:
        from otter.test_files.abstract_test import TestCaseResult as OtterCaseResult

        test_file = question.test_file()
        env, reason = None, status
        if facts_list is not None and status in (GRADED, "memory limit"):
            try:
                env = self._env(facts_list, probe)
            except (ValueError, KeyError, TypeError):
                env, reason = None, "invalid observation data"
        cases, otter_results = [], []
        for case in test_file.test_cases:
            if env is None:
                passed, hint = False, f"This question could not be graded: {reason}."
            else:
                passed, hint = self._run_case(case, env)
            otter_results.append(OtterCaseResult(test_case=case, message=hint or "passed", passed=passed))
            cases.append((case, passed, hint))
        test_file.test_case_results = otter_results
        score = float(test_file.score)   # otter's own rules: partial credit, all_or_nothing
        tests = tuple(
            TestCaseResult(name=_case_name(case), hidden=bool(case.hidden),
                           points=float(case.points or 0) if (score if test_file.all_or_nothing else passed) else 0.0,
                           max_points=float(case.points or 0), passed=passed, hint=hint)
            for case, passed, hint in cases
        )
        question_status = GRADED if env is not None and status == GRADED else reason
        return QuestionResult(name=question.name, points=round(score, 6),
                              max_points=round(float(test_file.possible), 6),
                              status=question_status, tests=tests)

    def _run_case(self, case, env) -> tuple[bool, str]:
        try:
            case.body.call_func(env)
            return True, ""
        except self.checks.CheckFailed as failure:
            return False, str(failure)
        except Exception as exc:  # a test that breaks on valid data is a bug in the test
            return False, f"This check could not run ({type(exc).__name__}); please tell course staff."

    def judge(self, answer: dict, probe) -> tuple[QuestionResult, ...]:
        observations = answer.get("observations", {})
        statuses = answer.get("status", {})
        return tuple(
            self.question(q, observations.get(q.name), statuses.get(q.name, "not reached"), probe)
            for q in self.autograder.questions
        )


def _case_name(case) -> str:
    body = getattr(case.body, "test_func", None)
    return getattr(body, "__name__", None) or case.name or "test"
