"""Submissions in, validated code cells out.

discover() turns the PATHS a TA gives (files, folders, Canvas or Moodle downloads as a zip or
a folder) into one InputFile per submitted file. read_cells() turns one file's bytes into the
code cells to run, or raises InvalidSubmission with a plain reason. Nothing is ever extracted
to disk: archive members are read into memory after their sizes are checked.
"""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..results import StudentRef

MAX_NOTEBOOK_BYTES = 200 * 2**20     # a notebook with huge outputs is still read
MAX_CODE_BYTES = 5 * 2**20           # code is what runs: far less than that is honest
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


def _source(cell) -> str:
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(source, list):
        if not all(isinstance(s, str) for s in source):
            raise InvalidSubmission("invalid notebook: a cell's source is not text")
        return "".join(source)
    if not isinstance(source, str):
        raise InvalidSubmission("invalid notebook: a cell's source is not text")
    return source


def read_cells(data: bytes) -> list[str]:
    """The code cells of a submitted notebook (or otter export zip), in order."""
    if data[:4] == b"PK\x03\x04":
        data = _notebook_from_export_zip(data)
    if not data.strip():
        raise InvalidSubmission("empty file")
    try:
        nb = json.loads(data)
    except UnicodeDecodeError:
        raise InvalidSubmission("not a notebook: the file is not text") from None
    except ValueError:
        text = data[:2000].decode("utf-8", "replace")
        if any(k in text for k in ("import ", "def ", "print(")) and not text.lstrip().startswith("{"):
            raise InvalidSubmission("not a notebook: this looks like a Python script; submit the .ipynb") from None
        raise InvalidSubmission("invalid notebook: the file is not valid JSON (truncated or damaged?)") from None
    if not isinstance(nb, dict):
        raise InvalidSubmission("invalid notebook: not a notebook document")
    if nb.get("nbformat") == 3 or "worksheets" in nb:
        nb = _upgrade_v3(nb)
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    kernelspec = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    language_info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    language = str(kernelspec.get("language") or language_info.get("name") or "python").lower()
    if language not in ("python", "python3", "ipython"):
        shown = {"r": "R", "julia": "Julia", "javascript": "JavaScript"}.get(language, language)
        raise InvalidSubmission(f"this is a {shown} notebook, not a Python one; submit the lab's notebook")
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise InvalidSubmission("invalid notebook: it has no list of cells")
    code = [_source(c) for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]
    if sum(len(c) for c in code) > MAX_CODE_BYTES:
        raise InvalidSubmission("the notebook holds more than 5 MB of code")
    return code


def _upgrade_v3(nb: dict) -> dict:
    import nbformat
    try:
        node = nbformat.reads(json.dumps(nb), as_version=4)
    except Exception:
        raise InvalidSubmission("invalid notebook: an old format (nbformat 3) that could not be converted") from None
    return json.loads(nbformat.writes(node))
