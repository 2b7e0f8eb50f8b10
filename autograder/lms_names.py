"""Who handed a file in, read from the names an LMS gives its bulk downloads.

Canvas "Download Submissions" names every file
    <loginname>_<canvas user id>_<submission id>_<original name>
and a late one
    <loginname>_LATE_<canvas user id>_<submission id>_<original name>
where a resubmitted file may carry Canvas's `-N` suffix before its extension
(`differentiation-2.ipynb`).

Moodle "Download all submissions" (in folders) gives one folder per student:
    <Full name>_<participant id>_assignsubmission_file_

Both parsers return None for a name that does not have that shape; they never guess.
"""

from __future__ import annotations

import re
import unicodedata

from .results import StudentRef

_DIGITS = re.compile(r"[0-9]+")
# Canvas's resubmission suffix: "-N" right before the last extension (or at the end when the
# file has none). Up to three digits, no leading zero, so "lab-2024.ipynb" keeps its year.
_ATTEMPT = re.compile(r"^(?P<stem>.*[^-])-(?P<n>[1-9][0-9]{0,2})(?P<ext>\.[^.]*)?$")
# The trailing "_" is optional: some unzip tools drop it.
_MOODLE = re.compile(r"^(?P<name>.+)_(?P<id>[0-9]+)_assignsubmission_(?P<plugin>[a-z]+)_?$")


def _base_name(path: str) -> str:
    """The last component of a path, NFC-normalised (macOS unzip gives decomposed accents)."""
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return unicodedata.normalize("NFC", name)


def split_attempt(original: str) -> tuple[str, int]:
    """`differentiation-2.ipynb` -> ("differentiation.ipynb", 2); no suffix -> (original, 0)."""
    m = _ATTEMPT.match(original)
    if not m:
        return original, 0
    return m["stem"] + (m["ext"] or ""), int(m["n"])


def parse_canvas_name(filename: str) -> StudentRef | None:
    """Read a Canvas "Download Submissions" file name (a path is fine: only its last part counts).

    The user id and submission id are the first pair of purely numeric `_`-separated fields
    after the login; everything before them is the login (minus a `LATE` marker), everything
    after them is the student's own file name, which may itself contain underscores and digits.
    """
    name = _base_name(filename)
    parts = name.split("_")
    # parts[:i] login (+ LATE), parts[i] user id, parts[i+1] submission id, parts[i+2:] name
    for i in range(1, len(parts) - 2):
        if _DIGITS.fullmatch(parts[i]) and _DIGITS.fullmatch(parts[i + 1]):
            break
    else:
        return None
    login_parts = parts[:i]
    late = False
    if len(login_parts) >= 2 and login_parts[-1].upper() == "LATE":
        late = True
        login_parts = login_parts[:-1]
    login = "_".join(login_parts)
    original = "_".join(parts[i + 2:])
    if not login or not original:
        return None
    original, attempt = split_attempt(original)
    return StudentRef(lms="canvas", key=parts[i], login=login, submission_id=parts[i + 1],
                      late=late, attempt=attempt, original_name=original)


def parse_moodle_folder(folder_name: str) -> StudentRef | None:
    """Read a Moodle "Download all submissions" folder name: `<Full name>_<id>_assignsubmission_file_`.

    The full name may contain spaces, underscores, digits and accents; the participant id is
    the last numeric field before `_assignsubmission_`.
    """
    name = _base_name(folder_name)
    m = _MOODLE.match(name)
    if not m or not m["name"].strip():
        return None
    return StudentRef(lms="moodle", key=m["id"], name=m["name"].strip())
