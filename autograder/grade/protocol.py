"""The typed model on both sides of the sandbox boundary.

Going in (supervisor -> run): a `Job`, the submission's screened code split into per-question
segments. Coming out (run -> supervisor): JSON lines that `parse_record` turns into `Record`s.
Everything that comes out was written by a process the student owns, so it is a claim: it is
validated here on the way in, and anything malformed (not JSON, too deep, wrong fields) makes
the run "tampering detected". The observations themselves (autograd_checks.Facts) are validated
again by the judge, field by field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .isolate import Limits

MAX_RECORD_BYTES = 8 * 2**20   # one line on the record pipe (an observation of a few big tensors)
RECORD_KINDS = ("mode", "seg", "obs", "err", "bg", "done", "setup")


# Magics the fast path honours without IPython (display and installs mean nothing in a graded
# run; the bodies of timing and capture magics simply run). A cell with any other magic makes
# the whole run go through a real IPython shell.
NO_OP_LINE_MAGICS = frozenset({"matplotlib", "config", "load_ext", "reload_ext", "autoreload", "pylab",
                               "pip", "conda", "precision", "pprint", "xmode", "who", "whos", "pwd",
                               "ls", "history", "colors"})
RUN_BODY_LINE_MAGICS = frozenset({"time", "timeit"})
RUN_BODY_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
NO_OP_CELL_MAGICS = frozenset({"html", "markdown", "latex", "javascript", "js", "svg"})
FAST_CELL_MAGICS = RUN_BODY_CELL_MAGICS | NO_OP_CELL_MAGICS | {"writefile"}
# `!pip install ...` lines: allowed by the screen (with plain package names), no-ops when run
INSTALL_COMMANDS = (["pip", "install"], ["conda", "install"])
# %timeit options and whether each takes a value (IPython's "n:r:tcp:qo", without -s: its
# setup code would be code the fast path does not run)
TIMEIT_OPTIONS = {"-n": True, "-r": True, "-p": True, "-t": False, "-c": False, "-q": False, "-o": False}

_TRANSFORMER = None


def transform_cell(source: str) -> str:
    """A cell as IPython's syntax transform writes it (magics and shell lines become calls)."""
    global _TRANSFORMER
    if _TRANSFORMER is None:
        from IPython.core.inputtransformer2 import TransformerManager
        _TRANSFORMER = TransformerManager()
    return _TRANSFORMER.transform_cell(source)


def fast_path_honours(kind: str, name: str) -> bool:
    """Can the fast path run this magic ("line" or "cell") without IPython?"""
    if kind == "line":
        return name in NO_OP_LINE_MAGICS or name in RUN_BODY_LINE_MAGICS
    return name in FAST_CELL_MAGICS


def timeit_statement(line: str) -> tuple[str, list[str]]:
    """`%timeit`'s statement, and the options it does not know (which make it not Python)."""
    words = line.split()
    unknown = []
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        option, value = flag[:2], flag[2:]
        if option not in TIMEIT_OPTIONS:
            unknown.append(flag)
        elif TIMEIT_OPTIONS[option] and not value and words:
            words.pop(0)
    return " ".join(words), unknown


def magic_code(kind: str, name: str, line: str, cell: str = "") -> str | None:
    """The Python code the fast path runs for a magic (None: it runs nothing). The screen reads
    exactly this code, so what is screened is what runs."""
    if kind == "line":
        if name == "time":
            return line
        if name == "timeit":
            statement, unknown = timeit_statement(line)
            return None if unknown else statement
        return None
    if name in RUN_BODY_CELL_MAGICS:
        return transform_cell(cell)
    return None


@dataclass(frozen=True)
class QuestionSpec:
    name: str
    segment: int                 # the segment whose last cell is this question's check cell
    names: tuple[str, ...]       # the student names its tests use
    checked: bool = True         # False: the submission has no grader.check cell for it


@dataclass(frozen=True)
class Job:
    """What a run needs: the cells to execute, in order, and where to observe."""

    id: str
    cells: tuple[str | None, ...]      # code as screened (after IPython's transform); None: never run
    sources: tuple[str, ...]           # the cells as written (the IPython path runs these)
    segments: tuple[int, ...]          # cell -> segment (a segment ends at a check cell)
    end_segment: int
    questions: tuple[QuestionSpec, ...]
    probe: tuple[tuple[float, ...], tuple[float, ...]]
    limits: Limits
    mode: str = "fast"                 # "fast" | "ipython"
    answers: tuple[bool, ...] = ()     # cell -> an answer cell of its question (not one of the lab's own)
    # calls of the student's code the judge's tests made: (question, name, op, arguments), run at
    # that question's check cell; their results come back among its observations as "#call<i>"
    calls: tuple[tuple, ...] = ()

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Job":
        d = json.loads(data)
        return cls(
            id=d["id"], cells=tuple(d["cells"]), sources=tuple(d["sources"]),
            segments=tuple(d["segments"]), end_segment=d["end_segment"],
            questions=tuple(QuestionSpec(q["name"], q["segment"], tuple(q["names"]), q["checked"])
                            for q in d["questions"]),
            probe=(tuple(d["probe"][0]), tuple(d["probe"][1])), limits=Limits(**d["limits"]),
            mode=d["mode"], answers=tuple(bool(a) for a in d.get("answers", ())),
            calls=tuple(tuple(c) for c in d.get("calls", ())),
        )

    def question(self, name: str) -> QuestionSpec | None:
        return next((q for q in self.questions if q.name == name), None)


@dataclass(frozen=True)
class Record:
    """One validated line from a run: kind plus the fields that kind carries."""

    kind: str
    segment: int | None = None
    question: str | None = None
    values: dict | None = None     # name -> observed value (plain), validated by the judge
    stale: dict | None = None      # name -> the earlier question whose cells last set it
    text: str = ""                 # the error name, the mode, or the setup failure
    nonce: str = ""                # the run's token (out of reach of allowlisted code)


def _int(value) -> int:
    if type(value) is not int or not 0 <= value < 1_000_000:
        raise ValueError("bad segment")
    return value


def parse_record(line: bytes) -> Record | None:
    """A line from the record pipe, or None when it does not follow the protocol."""
    if len(line) > MAX_RECORD_BYTES:
        return None
    try:
        d = json.loads(line)
    except (ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(d, dict) or d.get("t") not in RECORD_KINDS:
        return None
    kind = d["t"]
    nonce = d.get("n", "")
    if type(nonce) is not str:
        return None
    try:
        return _record(kind, d, nonce[:64])
    except (KeyError, ValueError, TypeError):
        return None


def _record(kind: str, d: dict, nonce: str) -> Record | None:
    if kind in ("seg", "bg"):
        return Record(kind, segment=_int(d["s"]), nonce=nonce)
    if kind == "err":
        if type(d["e"]) is not str:
            return None
        return Record(kind, segment=_int(d["s"]), text=d["e"][:60], nonce=nonce)
    if kind == "obs":
        values = d["values"]
        if type(d["q"]) is not str or type(values) is not dict or len(values) > 1000:
            return None
        if not all(type(k) is str and isinstance(v, dict) for k, v in values.items()):
            return None
        stale = d.get("stale", {})
        if type(stale) is not dict or not all(type(k) is str and type(v) is str for k, v in stale.items()):
            return None
        return Record(kind, question=d["q"][:100], values=values, stale=stale, nonce=nonce)
    if kind == "mode":
        return Record(kind, text=d["m"], nonce=nonce) if d.get("m") in ("fast", "ipython") else None
    if kind == "setup":
        return Record(kind, text=str(d.get("e"))[:300], nonce=nonce)
    return Record(kind, nonce=nonce)
