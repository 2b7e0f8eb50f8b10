"""The report's PNG plots, drawn with matplotlib's Agg backend (no display needed).

Every plot function takes the batch statistics and returns PNG bytes; with no data to show it
draws a titled placeholder instead of failing, so a batch of only invalid files still gets a
complete report.
"""

from __future__ import annotations

import functools
import io
import textwrap

import matplotlib

matplotlib.use("Agg")   # before pyplot is imported anywhere: no GUI backend, works headless

from matplotlib.figure import Figure  # noqa: E402  (object API: no global pyplot state)
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from ..escape import printable  # noqa: E402

DPI = 100
WIDTH = 9.0            # inches: 900 px at DPI
GREEN, ORANGE, RED, GREY, BLUE = "#2e7d32", "#ef6c00", "#c62828", "#9aa0a6", "#1a73e8"


# Labels come from the records: hints (which may quote a student's class name such as
# "$\foo{$"), question names, file names. Drawn as plain text, never as mathtext or LaTeX:
# a "$" pair would otherwise be parsed, and a bad expression fails the whole report.
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}


def _plain_text(plot):
    """Draw the plot with mathtext off for every Text it creates, tick labels and legends
    included (they read the rcParams when created, which may be as late as savefig)."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(PLAIN_TEXT):
            return plot(*args, **kwargs)
    return wrapper


def _figure(height: float, width: float = WIDTH) -> Figure:
    # constrained layout keeps titles, suptitles and outside legends from overlapping
    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Figure) -> bytes:
    for text in fig.findobj(Text):      # also any Text made outside PLAIN_TEXT
        text.set_parse_math(False)
        text.set_usetex(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _placeholder(fig: Figure, ax, title: str, message: str) -> bytes:
    fig.set_size_inches(WIDTH, 2.4)
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, color="#5f6368",
            transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#dadce0")
    return _png(fig)


@_plain_text
def score_histogram(scores: list[float], max_points: float) -> bytes:
    fig = _figure(4.2)
    ax = fig.add_subplot()
    title = "Score distribution"
    if not scores:
        return _placeholder(fig, ax, title, "No submission produced a score.")
    top = max(max_points, max(scores), 1.0)
    # bins centred on multiples of a round step (at most ~20 bins), so full marks get a bar of
    # their own and half points do not fall on a bin edge
    step = next(s for s in (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, top / 20)
                if top / s <= 20)
    n_bins = int(top / step + 0.5) + 1
    edges = [(i - 0.5) * step for i in range(n_bins + 1)]
    ax.hist(scores, bins=edges, color=BLUE, edgecolor="white")
    mean = sum(scores) / len(scores)
    median = _median(scores)
    ax.axvline(mean, color=ORANGE, linestyle="--", linewidth=2, label=f"mean {mean:.2f}")
    ax.axvline(median, color=GREEN, linestyle=":", linewidth=2, label=f"median {median:.2f}")
    ax.set_xlim(edges[0] - step / 2, edges[-1] + step / 2)
    ax.set_title(f"{title} ({len(scores)} submission{'s' if len(scores) != 1 else ''})")
    ax.set_xlabel(f"points (out of {max_points:g})")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


@_plain_text
def pass_rates(rows: list[tuple[str, int, int, int, int]]) -> bytes:
    """rows: (question, full marks, partial, no points, not graded normally) counts."""
    height = 1.9 + 0.45 * max(len(rows), 2)
    fig = _figure(height)
    ax = fig.add_subplot()
    title = "Per-question results"
    if not rows or not any(sum(r[1:]) for r in rows):
        return _placeholder(fig, ax, title, "No submission was graded, so there are no question results.")
    names = [printable(r[0]) for r in rows][::-1]        # first question on top
    parts = [("all tests passed", GREEN), ("partial credit", ORANGE), ("no points", RED),
             ("not graded normally", GREY)]
    left = [0.0] * len(rows)
    for i, (label, color) in enumerate(parts):
        widths = []
        for r in rows[::-1]:
            total = sum(r[1:])
            widths.append(100.0 * r[1 + i] / total if total else 0.0)
        ax.barh(names, widths, left=left, color=color, label=label, edgecolor="white")
        left = [a + b for a, b in zip(left, widths)]
    for y, r in enumerate(rows[::-1]):
        total = sum(r[1:])
        if total:
            ax.text(101, y, f"{100.0 * r[1] / total:.0f}% passed", va="center", fontsize=10)
    ax.set_xlim(0, 118)
    ax.set_xticks([0, 20, 40, 60, 80, 100])
    ax.set_xlabel("% of graded submissions")
    ax.set_ylabel("question")
    ax.set_title("Per-question pass rate (all tests passed)")
    fig.legend(loc="outside lower center", ncol=4, frameon=False)
    return _png(fig)


def _label(text: str, width: int = 58, lines: int = 2) -> str:
    text = printable(text).replace("`", "")
    wrapped = textwrap.wrap(text, width=width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1].rstrip() + "…"
    return "\n".join(wrapped)


@_plain_text
def top_hints(hints: dict[str, list[tuple[str, int]]], top: int = 3) -> bytes:
    shown = [(q, rows[:top]) for q, rows in hints.items() if rows]
    title = "Most frequent hints per question"
    if not shown:
        fig = _figure(2.4)
        return _placeholder(fig, fig.add_subplot(), title,
                            "No hints: no test failed in a question that was graded normally.")
    heights = [0.35 + 0.45 * len(rows) for _, rows in shown]
    fig = _figure(1.1 + sum(heights), WIDTH + 2)
    axes = fig.subplots(len(shown), 1, squeeze=False, sharex=True,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    most = max(c for _, rows in shown for _, c in rows)
    for ax, (q, rows) in zip(axes, shown):
        labels = [_label(h) for h, _ in rows][::-1]
        counts = [c for _, c in rows][::-1]
        ax.barh(range(len(rows)), counts, color=RED, alpha=0.8, height=0.6)
        ax.set_yticks(range(len(rows)), labels, fontsize=9.5)
        for y, c in enumerate(counts):
            ax.text(c + most * 0.01, y, str(c), va="center", fontsize=9)
        ax.set_xlim(0, most * 1.1)
        ax.set_title(printable(q), loc="left", fontsize=11, fontweight="bold")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("submissions with this hint")
    fig.suptitle(title, fontsize=13)
    return _png(fig)


@_plain_text
def runtimes(values: list[tuple[float, bool]]) -> bytes:
    """values: (runtime in seconds, graded normally) for each counting submission."""
    fig = _figure(4.0)
    ax = fig.add_subplot()
    title = "Grading runtime per submission"
    if not any(t > 0 for t, _ in values):
        return _placeholder(fig, ax, title, "No submission ran (files that could not be graded "
                                            "are never run).")
    ordered = sorted(values, key=lambda v: -v[0])
    xs = list(range(1, len(ordered) + 1))
    colors = [BLUE if normal else ORANGE for _, normal in ordered]
    ax.bar(xs, [t for t, _ in ordered], color=colors, width=0.85)
    median = _median([t for t, _ in ordered])
    line = ax.axhline(median, color="#202124", linestyle="--", linewidth=1)
    ax.set_xlim(0.4, len(ordered) + 0.6)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.set_xlabel("submissions, slowest first")
    ax.set_ylabel("runtime (s)")
    ax.legend([Patch(color=BLUE), Patch(color=ORANGE), line],
              ["graded normally", "not graded normally", f"median {median:.1f} s"], loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return 0.0
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
