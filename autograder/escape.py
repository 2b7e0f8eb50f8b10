"""Escaping of student-controlled text for the places the autograder writes it.

Everything a submission controls is hostile: file names (also inside LMS download zips and
folders), the names and logins parsed from them, and the hints, statuses and notes of the
result records (a check may quote a class name the student chose). This module holds the one
helper per target:

- `printable`: any text, so that it can be encoded as UTF-8 and drawn by matplotlib;
- `safe_cell` / `safe_row`: CSV cells, against spreadsheet formula injection;
- `md_text` / `md_hint`: Markdown (feedback/*.md), against injected links, images, HTML and
  formatting;
- `url_part`: a piece of a URL (href/src) built from a name.

HTML goes through jinja2 with autoescaping (report/build.py); matplotlib text is drawn with
mathtext parsing off (report/plots.py).
"""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import quote

_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """Text with any lone surrogate (an undecodable byte of a file name, or a string the
    student's code made) replaced by U+FFFD: it can then be encoded as UTF-8 and drawn."""
    return _SURROGATE.sub("\ufffd", str(text))


# --------------------------------------------------------------------------- CSV

# What makes Excel, LibreOffice or Google Sheets read a cell as a formula (OWASP's list, plus
# the full-width forms some locales accept).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# A plain number such as -1.5, +3, -2,5 (decimal comma) or 1e-3 is data, not a formula.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?")
# Cells that start like a formula but cannot be one: Moodle writes "-" for "never".
_HARMLESS = frozenset({"-"})
_LONE_CR = re.compile("\r(?!\n)")


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet will show as text: a string starting with = + - @, a tab or a
    carriage return gets a leading single quote, unless it is a plain number. Lone surrogates
    become U+FFFD (see `printable`) and a carriage return not followed by a line feed becomes a
    line feed, so the cell cannot end its row early. Anything that is not a string (numbers,
    None) is returned unchanged."""
    if not isinstance(value, str):
        return value
    value = printable(value)
    if value.startswith(FORMULA_START) and value not in _HARMLESS and not _NUMBER.fullmatch(value):
        value = "'" + value
    # Python's csv writer quotes a field holding "\n" but not one holding a lone "\r" (unless
    # the file ends its lines with "\r\n"), which a reader takes as the end of the row.
    return _LONE_CR.sub("\n", value)


def safe_row(row: Iterable[object]) -> list[object]:
    return [safe_cell(c) for c in row]


# --------------------------------------------------------------------------- Markdown

# ASCII punctuation that CommonMark, GFM or a common extension (MathJax in Jupyter, attribute
# lists) gives a meaning inside a line; a backslash before any ASCII punctuation is a valid
# escape that renders the character itself.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>!|~&$])")
# What starts a block when it opens a line: heading, list item, quote, setext underline.
_MD_BLOCK_START = re.compile(r"^([#+\-=>]|[0-9]+[.)])")
# GFM autolinks without angle brackets: scheme://..., www.example.com, user@example.com.
_MD_AUTOLINK = re.compile(r"(?i)(:)(?=//)|(?<=www)(\.)|(@)")
_MD_CODE = re.compile(r"`([^`\n]+)`")


def _one_line(text: str) -> str:
    """Newlines would let text start a block of its own (heading, list, HTML block, code)."""
    return " ".join(printable(text).split())


def _md_inline(text: str) -> str:
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_AUTOLINK.sub(lambda m: "\\" + m.group(0), text)


def _md_line_start(text: str) -> str:
    return _MD_BLOCK_START.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], text)


def md_text(text: str) -> str:
    """Plain text for inline Markdown: renders as written, with no link, image, HTML, code or
    emphasis, and on one line (runs of white space become one space)."""
    return _md_line_start(_md_inline(_one_line(text)))


def md_hint(text: str) -> str:
    """A check's hint for Markdown: its `code` spans stay code spans (their content is literal,
    and cannot hold a backtick to break out), everything else is escaped like `md_text`."""
    text = _one_line(text)
    parts, last = [], 0
    for m in _MD_CODE.finditer(text):
        parts.append(_md_inline(text[last:m.start()]))
        parts.append(f"`{m.group(1)}`")
        last = m.end()
    parts.append(_md_inline(text[last:]))
    return _md_line_start("".join(parts))


# --------------------------------------------------------------------------- URLs

def url_part(text: str) -> str:
    """A name as one path segment or fragment of a URL: percent-encoded, "/" included."""
    return quote(str(text), safe="")
