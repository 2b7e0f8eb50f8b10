"""Submissions in, validated code cells out.

discover() turns the PATHS a TA gives (files, folders, Canvas or Moodle downloads as a zip or
a folder) into one InputFile per submitted file. read_notebook() (read_cells() for just their
sources) turns one file's bytes into the code cells to run, or raises InvalidSubmission with a
plain reason. Nothing is ever extracted to disk: archive members are read into memory after
their sizes are checked, and a notebook is parsed as a stream within fixed limits (see below),
since all this runs unsandboxed on whatever was submitted.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import secrets
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import ijson

try:
    from ijson.backends import yajl2_c as _ijson
except ImportError:          # without its C extension ijson is slower, not less safe
    _ijson = ijson

from ..errors import UserError
from ..results import StudentRef

MAX_NOTEBOOK_BYTES = 200 * 2**20     # a notebook with huge outputs is still read
MAX_CODE_BYTES = 1 * 2**20           # code is what runs: honest lab notebooks hold under 100 KB
MAX_ZIP_MEMBERS = 2000
MAX_COMPRESSION_RATIO = 200


class InvalidSubmission(Exception):
    """The file cannot be graded; the message says why, for the grading_status column."""


@dataclass(frozen=True)
class InputFile:
    source: str                  # display path, relative to the PATH given (unique in a batch)
    path: Path                   # the file on disk, or the LMS archive holding it
    member: str | None = None    # the member name inside an LMS archive
    student: StudentRef = field(default_factory=StudentRef)
    submitted_at: float = 0.0

    @property
    def file(self) -> str:
        return self.source

    def read(self) -> bytes:
        if self.member is None:
            size = self.path.stat().st_size
            if size > MAX_NOTEBOOK_BYTES:
                raise InvalidSubmission(f"file too large ({size >> 20} MB)")
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return _read_member(archive, archive.getinfo(self.member))


def printable(name: str) -> str:
    """File names may not be valid UTF-8 (surrogate-escaped); make them safe to print."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def content_digest(data: bytes, autograder_digest: str) -> str:
    return hashlib.sha256(data + b"\0" + autograder_digest.encode()).hexdigest()[:32]


# --------------------------------------------------------------------- discovery


def _identity(relative: str) -> StudentRef:
    from ..lms_names import parse_canvas_name, parse_moodle_folder

    parts = printable(relative).split("/")
    ref = parse_canvas_name(parts[-1])
    if ref is None and len(parts) > 1:
        for folder in reversed(parts[:-1]):
            ref = parse_moodle_folder(folder)
            if ref is not None:
                ref = StudentRef(**{**ref.__dict__, "original_name": parts[-1]})
                break
    return ref or StudentRef(original_name=parts[-1])


def _wanted(name: str, ext: str, lms: bool) -> bool:
    base = name.rsplit("/", 1)[-1]
    if base.startswith(".") or "__MACOSX" in name or ".ipynb_checkpoints" in name:
        return False
    if lms:   # students hand in either the notebook or otter's export zip
        return base.endswith((".ipynb", ".zip"))
    return base.endswith("." + ext)


def _is_lms_archive(path: Path, ext: str) -> bool:
    """A zip given as PATH is a 'download all submissions' archive unless we grade zips
    and it is itself an export (it holds a notebook at its top level)."""
    if ext != "zip":
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False
    return not any(n.endswith(".ipynb") and "/" not in n for n in names)


def discover(paths: list[Path], ext: str = "ipynb") -> list[InputFile]:
    found: list[InputFile] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
        if path.is_dir():
            lms = any(_identity(p.name + "/x").lms for p in path.iterdir() if p.is_dir())
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path).as_posix()
                if file.is_file() and not file.is_symlink() and _wanted(rel, ext, lms):
                    if lms and file.suffix == ".zip" and _is_lms_archive(file, "zip"):
                        continue
                    found.append(InputFile(source=printable(rel), path=file, student=_identity(rel),
                                           submitted_at=file.stat().st_mtime))
        elif path.suffix == ".zip" and _is_lms_archive(path, ext):
            found.extend(_discover_archive(path, ext))
        else:
            found.append(InputFile(source=printable(path.name), path=path, student=_identity(path.name),
                                   submitted_at=path.stat().st_mtime))
    seen: dict[str, int] = {}
    unique = []
    for item in found:   # two PATHS may hold the same relative name: keep both, distinctly
        count = seen.get(item.source, 0)
        seen[item.source] = count + 1
        unique.append(item if count == 0 else InputFile(**{**item.__dict__, "source": f"{item.source}#{count + 1}"}))
    return unique


def _discover_archive(path: Path, ext: str) -> list[InputFile]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a valid zip file") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > 100_000:
            raise UserError(f"{path} holds {len(infos)} files; is it really a submissions download?")
        items = []
        for info in infos:
            if info.is_dir() or not _wanted(info.filename, ext, lms=True):
                continue
            name = printable(info.filename)
            modified = _zip_time(info)
            items.append(InputFile(source=name, path=path, member=info.filename,
                                   student=_identity(name), submitted_at=modified))
        return items


def _zip_time(info: zipfile.ZipInfo) -> float:
    import datetime as dt
    try:
        return dt.datetime(*info.date_time).timestamp()
    except ValueError:
        return 0.0


# --------------------------------------------------------------------- reading


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InvalidSubmission(f"the zip holds a link ({printable(info.filename)}), not a file")
    if info.file_size > MAX_NOTEBOOK_BYTES:
        raise InvalidSubmission(f"file inside the zip too large ({info.file_size >> 20} MB)")
    if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO \
            and info.file_size > 10 * 2**20:
        raise InvalidSubmission("the zip looks like a zip bomb (compression ratio too high)")
    try:
        with archive.open(info) as member:
            data = member.read(MAX_NOTEBOOK_BYTES + 1)   # the header may lie: cap the real size
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, ValueError) as exc:
        raise InvalidSubmission(f"the zip is damaged or encrypted and cannot be read ({type(exc).__name__})") from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise InvalidSubmission("file inside the zip too large")
    return data


def _notebook_from_export_zip(data: bytes) -> bytes:
    import io
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidSubmission("not a valid zip file") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise InvalidSubmission(f"the zip holds {len(infos)} files; expected otter's export zip")
        for info in infos:
            name = info.filename
            if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
                raise InvalidSubmission(f"the zip holds an unsafe path ({printable(name)})")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidSubmission(f"the zip holds a link ({printable(name)}), not a file")
        notebooks = [i for i in infos if i.filename.endswith(".ipynb") and not i.is_dir()
                     and "__MACOSX" not in i.filename and ".ipynb_checkpoints" not in i.filename]
        if not notebooks:
            raise InvalidSubmission("the zip holds no notebook (.ipynb)")
        if len(notebooks) > 1:
            names = ", ".join(printable(i.filename) for i in notebooks[:3])
            raise InvalidSubmission(f"the zip holds {len(notebooks)} notebooks ({names}); submit exactly one")
        return _read_member(archive, notebooks[0])


# --------------------------------------------------------------------- parsing
#
# The notebook is read as a stream of JSON events (ijson over yajl), keeping only what grading
# needs: nbformat, the kernel's language, and each cell's type, source and (small) metadata.
# Outputs, attachments and every other value are skipped event by event, never built, so a
# notebook costs about its own size (plus the code kept) whatever it holds, and no nesting can
# recurse. Before that, one pass in C-speed blocks finds every string longer than _LONG_STRING
# as written (a huge output, say): yajl would re-scan such a string once per 64 KB it is fed
# (quadratic) and hold it several times over, so the parser is fed a short token in its place
# and the few such strings that are code are decoded on their own, within the code limit.


@dataclass(frozen=True)
class CodeCell:
    index: int                   # the cell's position among all the notebook's cells, from 0
    source: str
    metadata: dict = field(default_factory=dict)   # {} when absent, not an object, or too large


@dataclass(frozen=True)
class Notebook:
    code_cells: tuple[CodeCell, ...]


def read_cells(data: bytes) -> list[str]:
    """The code cells of a submitted notebook (or otter export zip), in order."""
    return [cell.source for cell in read_notebook(data).code_cells]


def read_notebook(data: bytes) -> Notebook:
    """A submitted notebook (or otter export zip), read within fixed limits: its code cells,
    in order, with their metadata; or InvalidSubmission with the reason in plain words."""
    if data[:4] == b"PK\x03\x04":
        data = _notebook_from_export_zip(data)
    if not _NON_BLANK.search(data):
        raise InvalidSubmission("empty file")
    text, start = _utf8(data)
    tokens, spans = _long_strings(text, start)
    reader = _Reader(text, start, spans, list(tokens))
    parser = _Parser(_ijson.basic_parse(reader, buf_size=_CHUNK), text, tokens)
    try:
        parser.read()
    except InvalidSubmission:
        raise
    except (ijson.JSONError, ValueError, ArithmeticError, SystemError, StopIteration):
        # ijson's errors; a number too long for int() surfaces as a SystemError
        raise _not_json(text) from None
    return parser.result()


MAX_CELLS = 10_000                   # cells of any kind in one notebook
MAX_CELL_METADATA = 64 * 2**10       # a code cell's metadata is dropped ({}) beyond this, as JSON...
MAX_METADATA = 1 * 2**20             # ...or once the code cells' metadata together reaches this
MAX_METADATA_DEPTH = 32              # ...or when it nests deeper than this
MAX_DEPTH = 1_000_000                # nesting anywhere (skipped values cost a counter, yajl a byte per level)
_LONG_STRING = 64 * 2**10            # longer strings (as written) never reach the parser
_BLOCK = 2**20                       # the size of the pieces scanned at C speed
_CHUNK = 64 * 2**10                  # what ijson reads at a time

_NON_BLANK = re.compile(rb"\S")
_LONG_RUN = re.compile(rb'"([^"]{%d,})' % _LONG_STRING)
_WORD_BYTES = bytes(sorted(set(range(256)) - set(b' \t\n\r[]{},:"')))   # of numbers, true, false, null
_BAD_ESCAPE = re.compile(rb"\\(?:[^/bfnrtu]|u(?![0-9A-Fa-f]{4}))")
_CONTROL = bytes(range(32))          # not allowed unescaped in a string
_OPEN = frozenset(("start_map", "start_array"))
_CLOSE = frozenset(("end_map", "end_array"))
_MISSING = object()       # a key that is absent
_CONTAINER = object()     # a non-empty array or object where a plain value was wanted
_NOT_A_LIST = object()


def _not_json(data) -> InvalidSubmission:
    text = bytes(data[:2000]).decode("utf-8", "replace")
    if any(k in text for k in ("import ", "def ", "print(")) and not text.lstrip().startswith("{"):
        return InvalidSubmission("not a notebook: this looks like a Python script; submit the .ipynb")
    return InvalidSubmission("invalid notebook: the file is not valid JSON (truncated or damaged?)")


def _too_much_code() -> InvalidSubmission:
    return InvalidSubmission(f"the notebook holds more than {MAX_CODE_BYTES >> 20} MB of code")


def _utf8(data: bytes) -> tuple[bytes | bytearray, int]:
    """The notebook as UTF-8 text and where its JSON starts (after a byte order mark). JSON's
    other encodings (UTF-16, UTF-32), which json.loads accepted, are transcoded piece by piece."""
    encoding = json.detect_encoding(data[:4])
    view = memoryview(data)
    try:
        if encoding in ("utf-8", "utf-8-sig"):
            start = 3 if encoding == "utf-8-sig" else 0
            decoder = codecs.getincrementaldecoder("utf-8")()
            for i in range(start, len(data), _BLOCK):
                decoder.decode(view[i:i + _BLOCK])
            decoder.decode(b"", True)
            return data, start
        decoder = codecs.getincrementaldecoder(encoding)()
        text = bytearray()
        for i in range(0, len(data), _BLOCK):
            text += decoder.decode(view[i:i + _BLOCK]).encode("utf-8")
        text += decoder.decode(b"", True).encode("utf-8")
        return text, 0
    except UnicodeError:
        raise InvalidSubmission("not a notebook: the file is not text") from None


def _plain_pieces(data, start: int, end: int):
    """data[start:end] in pieces of about _BLOCK bytes, each with its escaped backslashes and
    quotes blanked (\\\\ and \\" written __, same length): in valid JSON every quote left is where
    a string begins or ends, every backslash left begins an escape. start must not be inside
    an escape; pieces never split one."""
    pos = start
    while pos < end:
        stop = min(pos + _BLOCK, end)
        piece = data[pos:stop]
        if stop < end:
            run = len(piece) - len(piece.rstrip(b"\\"))
            if run % 2:                        # the last backslash escapes the next piece's first byte
                stop -= 1
                piece = piece[:-1]
        plain = piece.replace(b"\\\\", b"__").replace(b'\\"', b"__")
        if stop < end:
            cut = plain.find(b"\\", len(plain) - 5)
            if cut > 0:                        # an escape (\\uXXXX) that may run into the next piece
                stop = pos + cut
                plain = plain[:cut]
        yield pos, plain
        pos = stop


def _long_strings(data, start: int) -> tuple[dict[str, tuple[int, int]], list[tuple[int, int]]]:
    """Every string longer than _LONG_STRING bytes as written: a token to stand for each, and
    their contents' (start, end) in order. Such a string's content is checked here, as yajl
    would check it, since yajl never sees it; a word that long outside strings is refused."""
    spans: list[tuple[int, int]] = []
    quotes = 0          # quotes before the current piece
    gap = start         # where the current stretch without quotes began
    for offset, plain in _plain_pieces(data, start, len(data)):
        first = plain.find(b'"')
        if first < 0:
            continue
        _gap(data, spans, gap, offset + first, quotes % 2 == 1)
        last = plain.rfind(b'"')
        seen, counted = quotes, 0
        for match in _LONG_RUN.finditer(plain, first, last + 1):
            at = match.start()
            seen += plain.count(b'"', counted, at)
            counted = at
            _gap(data, spans, offset + at + 1, offset + match.end(), seen % 2 == 0)
        quotes += plain.count(b'"')
        gap = offset + last + 1
    if quotes % 2 and len(data) - gap >= _LONG_STRING:
        raise _not_json(data)                  # a string that never ends
    _gap(data, spans, gap, len(data), quotes % 2 == 1)
    nonce = secrets.token_hex(16)
    return {f"{nonce}:{i}": span for i, span in enumerate(spans)}, spans


def _gap(data, spans: list, start: int, end: int, in_string: bool) -> None:
    if end - start < _LONG_STRING:
        return
    if not in_string:       # a number (or garbage) that long: yajl would re-scan it as a long string
        window = _LONG_STRING // 2
        for i in range(-(-start // window) * window, end - window + 1, window):
            if not data[i:i + window].translate(None, _WORD_BYTES):
                raise _not_json(data)
        return
    for _, plain in _plain_pieces(data, start, end):
        if len(plain.translate(None, _CONTROL)) != len(plain) or _BAD_ESCAPE.search(plain):
            raise _not_json(data)
    spans.append((start, end))


class _Reader:
    """The notebook text as ijson reads it: each long string's content replaced by its token."""

    def __init__(self, data, start: int, spans: list[tuple[int, int]], tokens: list[str]):
        self._view = memoryview(data)
        self._pos = start
        self._spans = spans
        self._tokens = [t.encode("ascii") for t in tokens]
        self._next = 0
        self._pending = b""      # the rest of a token that did not fit

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(size if size >= 0 else _CHUNK)
        return bytes(buffer[:self.readinto(buffer)])

    def readinto(self, buffer) -> int:
        if not len(buffer):
            return 0
        end = len(self._view)
        if self._next < len(self._spans):
            start, stop = self._spans[self._next]
            if self._pos == start:
                self._pending = self._tokens[self._next]
                self._pos = stop
                self._next += 1
        if self._pending:
            n = min(len(buffer), len(self._pending))
            buffer[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        if self._next < len(self._spans):
            end = self._spans[self._next][0]
        n = min(len(buffer), end - self._pos)
        buffer[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


class _Source:
    """A cell's source as read: its parts (strings, or the spans of long ones), or what is wrong."""
    __slots__ = ("parts", "is_list", "bad", "big")

    def __init__(self, parts=(), is_list=False, bad=False, big=False):
        self.parts, self.is_list, self.bad, self.big = parts, is_list, bad, big


class _Cells:
    """One list of cells as it is read: the code cells kept, within the limits."""

    def __init__(self):
        self.kept: list[CodeCell] = []
        self.count = 0            # cells of any kind
        self.code = 0             # characters of code kept
        self.metadata = 0         # bytes of metadata kept
        self.bad_source = False   # a code cell's source is not text
        self.too_much_code = False
        self.too_many = False
        self.broken = False       # (nbformat 3) worksheets that nbformat could not convert

    @property
    def done(self) -> bool:
        """Whether the notebook is already refused on account of these cells: skip the rest."""
        return self.bad_source or self.too_much_code or self.too_many or self.broken

    def mark(self) -> tuple:
        return (len(self.kept), self.count, self.code, self.metadata, self.bad_source,
                self.too_much_code, self.too_many, self.broken)

    def reset(self, mark: tuple) -> None:
        kept, self.count, self.code, self.metadata, self.bad_source, self.too_much_code, \
            self.too_many, self.broken = mark
        del self.kept[kept:]


def _join_lines(lines: list[str]) -> str:
    """How nbformat 3 joined a list of lines (rejoin_lines): as they are if the first ends
    with a newline, else with newlines between them."""
    if lines and lines[0].endswith(("\n", "\r")):
        return "".join(lines)
    return "\n".join(lines)


class _Parser:
    """Reads the events of one notebook, keeping what read_notebook needs, within the limits."""

    def __init__(self, events, data, long: dict[str, tuple[int, int]]):
        self.events = iter(events)
        self.next = self.events.__next__
        self.data = data
        self.long = long                 # token -> the span of the long string it stands for
        self.document = True             # the top level is an object
        self.nbformat = _MISSING
        self.kernel_language = _MISSING
        self.info_name = _MISSING
        self.cells = None                # _Cells of "cells", _NOT_A_LIST, or None if absent
        self.worksheets = None           # _Cells of nbformat 3's worksheets, or None if absent

    # ---- the outcome

    def result(self) -> Notebook:
        if not self.document:
            raise InvalidSubmission("invalid notebook: not a notebook document")
        v3 = self.nbformat == 3 or (self.worksheets is not None and self.nbformat != 4)
        if v3 and (self.worksheets is None or self.worksheets.broken):
            raise InvalidSubmission("invalid notebook: an old format (nbformat 3) that could not be converted")
        language = str(self._language(self.kernel_language) or self._language(self.info_name) or "python").lower()
        if language not in ("python", "python3", "ipython"):
            shown = {"r": "R", "julia": "Julia", "javascript": "JavaScript"}.get(language, language)
            if len(shown) > 40:
                shown = shown[:40] + "..."
            raise InvalidSubmission(f"this is a {shown} notebook, not a Python one; submit the lab's notebook")
        cells = self.worksheets if v3 else self.cells
        if not isinstance(cells, _Cells):
            raise InvalidSubmission("invalid notebook: it has no list of cells")
        if cells.too_many:
            raise InvalidSubmission(f"invalid notebook: it holds more than {MAX_CELLS} cells")
        if cells.bad_source:
            raise InvalidSubmission("invalid notebook: a cell's source is not text")
        if cells.too_much_code:
            raise _too_much_code()
        return Notebook(code_cells=tuple(cells.kept))

    def _language(self, value):
        """What str(value) gave when the notebook was a dict, or None where `or` passed it by."""
        if value is _MISSING or value is None:
            return None
        if value is _CONTAINER or (isinstance(value, str) and value in self.long):
            return "unknown"
        return str(value) if value else None

    # ---- reading

    def read(self) -> None:
        ev, _ = self.next()
        if ev != "start_map":
            self.document = False
            self.skip(ev, 1)
        else:
            for ev, key in self.events:
                if ev == "end_map":
                    break
                ev, value = self.next()
                if key == "cells":
                    self.cells = self.cell_list(ev, 2)
                elif key == "worksheets":
                    self.worksheets = self.worksheet_list(ev, 2)
                elif key == "metadata":
                    self.notebook_metadata(ev, 2)
                elif key == "nbformat":
                    self.nbformat = self.plain(ev, value, 2)
                else:
                    self.skip(ev, 2)
            else:
                raise StopIteration
        for _ in self.events:      # yajl reports anything after the document
            raise StopIteration

    def skip(self, ev: str, depth: int) -> None:
        """Skip the value that starts with ev, at nesting depth `depth` if it is a container."""
        if ev in _OPEN:
            self.skip_open(1, depth)

    def skip_open(self, level: int, depth: int) -> None:
        """Skip to the end of the `level` containers just opened, the outermost at `depth`."""
        limit = MAX_DEPTH - depth + 1
        if level > limit:
            raise self.too_deep()
        for ev, value in self.events:        # the hot loop: most events carry a value
            if value is None:
                if ev in _CLOSE:
                    level -= 1
                    if not level:
                        return
                elif ev in _OPEN:
                    level += 1
                    if level > limit:
                        raise self.too_deep()
        raise StopIteration

    @staticmethod
    def too_deep() -> InvalidSubmission:
        return InvalidSubmission(f"invalid notebook: it nests more than {MAX_DEPTH} levels deep")

    def plain(self, ev: str, value, depth: int):
        """A plain value (string, number, true/false/null); _CONTAINER for a non-empty array or
        object, None for an empty one (which, like null, `or` passes by)."""
        if ev not in _OPEN:
            return value
        ev, _ = self.next()
        if ev in _CLOSE:
            return None
        self.skip_open(2 if ev in _OPEN else 1, depth)
        return _CONTAINER

    def notebook_metadata(self, ev: str, depth: int) -> None:
        self.kernel_language = self.info_name = _MISSING      # this one replaces any earlier one
        if ev != "start_map":
            self.skip(ev, depth)
            return
        for ev, key in self.events:
            if ev == "end_map":
                return
            ev, value = self.next()
            if key == "kernelspec":
                self.kernel_language = self.field(ev, depth + 1, "language")
            elif key == "language_info":
                self.info_name = self.field(ev, depth + 1, "name")
            else:
                self.skip(ev, depth + 1)
        raise StopIteration

    def field(self, ev: str, depth: int, name: str):
        """One plain value of the object that starts with ev (_MISSING if it is not an object)."""
        found = _MISSING
        if ev != "start_map":
            self.skip(ev, depth)
            return found
        for ev, key in self.events:
            if ev == "end_map":
                return found
            ev, value = self.next()
            if key == name:
                found = self.plain(ev, value, depth + 1)
            else:
                self.skip(ev, depth + 1)
        raise StopIteration

    def cell_list(self, ev: str, depth: int):
        if ev != "start_array":
            self.skip(ev, depth)
            return _NOT_A_LIST
        cells = _Cells()
        self.read_cells(cells, depth, v3=False)
        return cells

    def worksheet_list(self, ev: str, depth: int) -> _Cells:
        """nbformat 3: worksheets, each with its list of cells, which nbformat flattened."""
        cells = _Cells()
        if ev != "start_array":
            self.skip(ev, depth)
            cells.broken = True
            return cells
        for ev, _ in self.events:
            if ev == "end_array":
                return cells
            if ev != "start_map" or cells.done:
                cells.broken = cells.broken or ev != "start_map"
                self.skip(ev, depth + 1)
                continue
            mark, has_cells = cells.mark(), False
            for ev, key in self.events:
                if ev == "end_map":
                    break
                ev, _ = self.next()
                if key == "cells":                 # the last one counts, as in a dict
                    cells.reset(mark)
                    has_cells = ev == "start_array"
                    if has_cells:
                        self.read_cells(cells, depth + 2, v3=True)
                    else:
                        self.skip(ev, depth + 2)
                else:
                    self.skip(ev, depth + 2)
            else:
                raise StopIteration
            if not has_cells:
                cells.broken = True
        raise StopIteration

    def read_cells(self, cells: _Cells, depth: int, v3: bool) -> None:
        """The items of the array just opened at `depth`, into `cells`."""
        for ev, _ in self.events:
            if ev == "end_array":
                return
            index = cells.count
            cells.count += 1
            if cells.count > MAX_CELLS:
                cells.too_many = True
            if ev != "start_map" or cells.done:
                cells.broken = cells.broken or (v3 and ev != "start_map")
                self.skip(ev, depth + 1)
                continue
            self.cell(cells, index, depth + 1, v3)
        raise StopIteration

    def cell(self, cells: _Cells, index: int, depth: int, v3: bool) -> None:
        """One cell (its object just opened at `depth`), kept in `cells` if it is code."""
        cell_type = source = metadata = collapsed = _MISSING
        source_key = "input" if v3 else "source"     # nbformat 3 kept a code cell's code in "input"
        for ev, key in self.events:
            if ev == "end_map":
                break
            ev, value = self.next()
            if key == "cell_type":
                cell_type = self.plain(ev, value, depth + 1)
            elif key == source_key:
                source = self.source(ev, value, depth + 1)
            elif key == "metadata":
                metadata = self.metadata(ev, value, depth + 1)
            elif v3 and key == "collapsed":
                collapsed = self.plain(ev, value, depth + 1)
            else:
                self.skip(ev, depth + 1)
        else:
            raise StopIteration
        if v3 and cell_type is _MISSING:
            cells.broken = True                      # nbformat's conversion needs every cell's type
            return
        if cell_type != "code":
            return
        if source is _MISSING:
            text = ""
        elif source.bad:
            if v3 and source.is_list:                # nbformat 3 could not even join its lines
                cells.broken = True
            else:
                cells.bad_source = True
            return
        elif source.big:
            cells.too_much_code = True
            return
        else:
            text = self.text(source, v3)
            if text is None:
                cells.too_much_code = True
                return
        cells.code += len(text)
        if cells.code > MAX_CODE_BYTES:
            cells.too_much_code = True
            return
        metadata, size = metadata if metadata is not _MISSING and metadata is not None else ({}, 0)
        if v3 and collapsed is not _MISSING and collapsed is not _CONTAINER:
            metadata = {**metadata, "collapsed": collapsed}   # where nbformat 4 keeps it
        if cells.metadata + size > MAX_METADATA:
            metadata, size = {}, 0
        cells.metadata += size
        cells.kept.append(CodeCell(index=index, source=text, metadata=metadata))

    def source(self, ev: str, value, depth: int) -> _Source:
        """A cell's source: a string or a list of strings, kept within the code limit."""
        if ev == "string":
            return _Source(parts=[self.long.get(value, value)], big=self._size(value) > MAX_CODE_BYTES)
        if ev != "start_array":
            self.skip(ev, depth)
            return _Source(bad=True)
        source = _Source(parts=[], is_list=True)
        size = 0
        for ev, value in self.events:
            if ev == "end_array":
                if source.bad or source.big:
                    source.parts = ()
                return source
            if ev != "string":
                source.bad = True
                self.skip(ev, depth + 1)
            elif not (source.bad or source.big):
                size += self._size(value)
                if size > MAX_CODE_BYTES:
                    source.big = True
                    source.parts = ()
                else:
                    source.parts.append(self.long.get(value, value))
        raise StopIteration

    def _size(self, value: str) -> int:
        """The fewest characters a string can decode to (a long one's content, \\uXXXX\\uXXXX
        at worst, takes 12 bytes a character)."""
        span = self.long.get(value)
        return len(value) if span is None else (span[1] - span[0]) // 12

    def text(self, source: _Source, v3: bool) -> str | None:
        """The source's text, its long strings decoded (None if it is then over the limit)."""
        parts, total = [], 0
        for part in source.parts:
            if isinstance(part, tuple):
                start, end = part
                part = json.loads(bytes(self.data[start - 1:end + 1]))
            total += len(part)
            if total > MAX_CODE_BYTES:
                return None
            parts.append(part)
        if not source.is_list:
            return parts[0]
        return _join_lines(parts) if v3 else "".join(parts)

    def metadata(self, ev: str, value, depth: int):
        """A cell's metadata object, built within MAX_CELL_METADATA bytes (as JSON, roughly)
        and MAX_METADATA_DEPTH levels, with its size; None if it is not an object or too large."""
        if ev != "start_map":
            self.skip(ev, depth)
            return None
        root: dict = {}
        stack: list = [root]
        container, key, size = root, None, 2
        long = self.long
        for ev, value in self.events:
            if ev == "map_key":
                key = value
                size += len(value) + 4
                if value in long:
                    size = MAX_CELL_METADATA + 1
            elif ev in _CLOSE:
                stack.pop()
                if not stack:
                    return root, size
                container = stack[-1]
                continue
            else:
                if ev in _OPEN:
                    child = {} if ev == "start_map" else []
                    size += 2
                elif ev == "string":
                    child = value
                    size += len(value) + 3
                    if value in long:
                        size = MAX_CELL_METADATA + 1
                else:
                    child = float(value) if isinstance(value, Decimal) else value
                    size += 8
                if type(container) is dict:
                    container[key] = child
                else:
                    container.append(child)
                if ev in _OPEN:
                    stack.append(child)
                    container = child
                    if len(stack) > MAX_METADATA_DEPTH:
                        size = MAX_CELL_METADATA + 1
            if size > MAX_CELL_METADATA:
                self.skip_open(len(stack), depth)
                return None
        raise StopIteration
