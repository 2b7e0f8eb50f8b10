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
import warnings
from pathlib import Path

from ..results import GRADED, QuestionResult, Status, TestCaseResult
from .autograder_zip import Autograder
from .isolate import Limits
from .protocol import Job, QuestionSpec
from .screen import Screened
from .values import CallBroker, Rebuilder, UnsupportedInJudge, _MissingAnswer, call_key

_CHECK_CALL = re.compile(r"""grader\s*\.\s*check\s*\(\s*["']([^"']+)["']""")
GRADCHECK_HINT = ("torch.autograd.gradcheck found that your backward disagrees with the numerical "
                  "derivative of your forward. Check the formula in backward and that it multiplies by grad_output.")
PROBE_SIZES = (3, 8)   # probe vectors have 3 to 8 elements, chosen per submission


def probe_inputs(seed: str) -> list[list[float]]:
    """Inputs (and a non-unit upstream gradient) for custom Functions, chosen per submission."""
    rng = random.Random(seed)
    size = rng.randint(*PROBE_SIZES)   # so that a Function cannot tell a probe by its shape
    inputs = [round(rng.uniform(-2.0, 2.0), 6) for _ in range(size)]
    upstream = [round(rng.choice((-1, 1)) * rng.uniform(1.5, 3.0), 6) for _ in range(size)]
    return [inputs, upstream]


def build_job(job_id: str, sources: list[str], screened: Screened, autograder: Autograder,
              limits: Limits, seed: str, answers=()) -> Job:
    """What a run needs for one submission: its screened cells split into per-question segments
    (a segment ends with a question's check cell)."""
    known = {q.name for q in autograder.questions}
    segments, question_segment, segment = [], {}, 0
    for source in sources:
        segments.append(segment)
        checked = [q for q in _CHECK_CALL.findall(source) if q in known]
        for q in checked:
            question_segment.setdefault(q, segment)
        if checked:
            segment += 1
    questions = tuple(
        QuestionSpec(name=q.name, segment=question_segment.get(q.name, segment), names=tuple(q.names),
                     checked=q.name in question_segment)
        for q in autograder.questions)
    inputs, upstream = probe_inputs(seed)
    return Job(id=job_id, cells=screened.codes, sources=tuple(sources), segments=tuple(segments),
               answers=tuple(answers),
               end_segment=segment, questions=questions, probe=(tuple(inputs), tuple(upstream)),
               limits=limits, mode=screened.mode)


class Judge:
    def __init__(self, autograder: Autograder) -> None:
        self.autograder = autograder
        files_dir = str(autograder.private_dir / "files")
        if files_dir not in sys.path:
            sys.path.insert(0, files_dir)
        import autograd_checks
        self.checks = autograd_checks

    def _env(self, values, probe, stale=None, broker=None) -> dict:
        """Real objects rebuilt from what the run observed (validated on the way in); a name
        its question's cells did not set is a marker that fails every test using it."""
        env = Rebuilder(self.checks, broker).env(values)
        for name, earlier in (stale or {}).items():
            if type(name) is str and type(earlier) is str:
                env[name] = self.checks.Stale(name, earlier[:300])
        for name, value in env.items():
            facts = self.checks.observe(value, name) if isinstance(value, type) else None
            if facts is not None and facts.probe is not None and \
                    [list(facts.probe.inputs), list(facts.probe.upstream)] != probe:
                raise ValueError("probe inputs differ from the ones chosen")
        return env

    def question(self, question, facts_list, status: tuple[Status, str], probe, stale=None, calls=(),
                 final: bool = True) -> QuestionResult:
        """One question's verdict. Calls of the student's code its tests make are answered from
        the run (`calls`, the job's specs); those it has not made yet are left in
        `self.missing`, and unless this is the `final` round the verdict is provisional."""
        from otter.test_files.abstract_test import TestCaseResult as OtterCaseResult

        test_file = question.test_file()
        env, (reason, detail) = None, status
        broker = None
        if facts_list is not None and reason in (GRADED, Status.MEMORY_LIMIT):
            try:
                values = {k: v for k, v in facts_list.items() if not k.startswith("#call")}
                answers = {}
                for i, spec in enumerate(calls):
                    if spec[0] == question.name and f"#call{i}" in facts_list:
                        answers[call_key(spec)] = facts_list[f"#call{i}"]
                broker = CallBroker(question.name, self.checks, answers)
                env = self._env(values, probe, stale, broker)
            except Exception:   # whatever the run sent that does not validate is its own loss
                env, reason, detail = None, Status.INVALID_OBSERVATION, ""
        elif reason is GRADED:   # graded, but nothing observed: the check cell never ran
            reason = Status.NOT_REACHED
        cases, otter_results = [], []
        for case in test_file.test_cases:
            if env is None:
                passed, hint = False, f"This question could not be graded: {reason.text(detail)}. {reason.student}"
            else:
                broker.missed = False
                passed, hint, error = self._run_case(case, env)
                if broker.missed and final:
                    passed, hint, error = False, "This check could not run in the secure grader; course staff " \
                        "have been told.", "unsupported in the secure grader: the test's calls of the " \
                        "student's code needed more rounds than the grader runs"
            otter_results.append(OtterCaseResult(test_case=case, message=hint or "passed", passed=passed))
            cases.append((case, passed, hint, error if env is not None else ""))
        if broker is not None:
            self.missing += broker.missing
        self.checks.forget_judge_facts()
        test_file.test_case_results = otter_results
        score = float(test_file.score)   # otter's own rules: partial credit, all_or_nothing
        tests = tuple(
            TestCaseResult(name=_case_name(case), hidden=bool(case.hidden),
                           points=float(case.points or 0) if (score if test_file.all_or_nothing else passed) else 0.0,
                           max_points=float(case.points or 0), passed=passed, hint=hint, error=error)
            for case, passed, hint, error in cases
        )
        question_status = GRADED if env is not None and reason is GRADED else reason
        return QuestionResult(name=question.name, points=round(score, 6),
                              max_points=round(float(test_file.possible), 6),
                              status=question_status, tests=tests,
                              detail=detail if question_status is not GRADED else "")

    def _run_case(self, case, env) -> tuple[bool, str, str]:
        """(passed, the student's hint, for staff: why the test could not run)."""
        from torch.autograd.gradcheck import GradcheckError   # torch is loaded by now: the env holds tensors
        try:
            with warnings.catch_warnings():   # a test's warnings (float() of a tracked tensor) are noise here
                warnings.simplefilter("ignore")
                case.body.call_func(env)
            return True, "", ""
        except self.checks.CheckFailed as failure:
            return False, str(failure), ""
        except AssertionError as failure:   # a plain assert of an otter-style test: a failed case
            return False, str(failure), ""
        except GradcheckError:   # torch's verdict on the student's Function, as under otter run
            return False, GRADCHECK_HINT, ""
        except _MissingAnswer:   # provisional: the next run answers this call
            return False, "", ""
        except UnsupportedInJudge as exc:   # the test needs what the judge cannot rebuild
            return False, "This check could not run in the secure grader; course staff have been told.", \
                f"unsupported in the secure grader: {exc}{_test_line(exc)}"
        except Exception as exc:  # a test that breaks on valid data is a bug in the test
            return False, "This check could not run; course staff have been told.", \
                f"{type(exc).__name__}: {str(exc)[:200]}{_test_line(exc)}"

    def judge(self, answer, probe, calls=(), final: bool = True) -> tuple[QuestionResult, ...]:
        """Every question's verdict; `self.missing` then lists the calls of the student's code
        the tests made that this run did not answer (run again with them, unless `final`)."""
        self.missing: list[tuple] = []
        return tuple(
            self.question(q, answer.observations.get(q.name),
                          answer.status.get(q.name, (Status.NOT_REACHED, "")), probe,
                          answer.stale.get(q.name), calls, final)
            for q in self.autograder.questions
        )


def _test_line(exc: BaseException) -> str:
    """Where in the test file the error was raised (its last frame in a test file)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/tests/" in f.filename.replace("\\", "/")]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno}: {(frame.line or '').strip()[:120]})"


def _case_name(case) -> str:
    body = getattr(case.body, "test_func", None)
    return getattr(body, "__name__", None) or case.name or "test"
