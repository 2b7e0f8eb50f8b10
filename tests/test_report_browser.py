"""The report in a real browser: Debian's headless Chromium renders OUT/report/index.html.

How: the plain `chromium` command line, no Python browser driver. Playwright happens to be in
some venvs but nothing in pyproject.toml depends on it, so a fresh `make test` could not rely on
it; the command line needs only the Debian package, which `make test` installs.

- `--dump-dom` prints the DOM after the load event. The report carries a tiny inline script that,
  on load, writes how many images decoded (naturalWidth > 0) and how many error events fired
  into attributes of <body> (data-images-ok="4/4", data-errors="0").
- `--enable-logging=stderr` makes Chromium print every console message and uncaught exception
  as a line with "CONSOLE" (e.g. `INFO:CONSOLE:4] "Uncaught ReferenceError: ..."`); there must
  be none: the report itself never logs.
- A self-check renders a deliberately broken page first, so a Chromium whose log format changed
  fails this test instead of passing it vacuously.
- `--screenshot` keeps tests/artifacts/report.png (git-ignored) for a human to look at.

Without chromium this test fails and says to run `make test`; AUTOGRADER_SKIP_BROWSER=1 skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import build_batch   # tests/ is on sys.path (pytest's rootdir-relative import)

from autograder.report import write_report
from autograder.results import save_batch

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
CONSOLE = re.compile(r"CONSOLE[(:\]]|Uncaught")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def chromium():
    if os.environ.get("AUTOGRADER_SKIP_BROWSER") == "1":
        pytest.skip("AUTOGRADER_SKIP_BROWSER=1")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Debian's chromium is not installed, so the report cannot be checked in a "
                    "browser: run `make test` (it installs chromium), or "
                    "`sudo apt-get install -y chromium`; AUTOGRADER_SKIP_BROWSER=1 skips this test",
                    pytrace=False)
    return exe


def run_chromium(exe: str, profile: Path, url: str, *extra: str) -> tuple[str, list[str]]:
    """The dumped DOM (or "") and the console lines Chromium logged while loading `url`."""
    proc = subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True, text=True, timeout=90, env={**os.environ, "LANG": "C.UTF-8"},
    )
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout, [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]


def dump(exe: str, profile: Path, page: Path) -> tuple[str, list[str]]:
    return run_chromium(exe, profile, page.resolve().as_uri(), "--virtual-time-budget=5000",
                        "--dump-dom")


def body_attr(dom: str, name: str) -> str | None:
    match = re.search(r"<body\b[^>]*\b" + re.escape(name) + r'="([^"]*)"', dom)
    return match.group(1) if match else None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser_batch")
    results, _ = build_batch()
    save_batch(out, results)
    return out, write_report(out), results


def test_harness_detects_broken_images_and_console_errors(chromium, report, tmp_path):
    """A copy of the report with one PNG missing and an uncaught error must be caught."""
    out, index, _ = report
    broken = tmp_path / "report"
    shutil.copytree(index.parent, broken)
    (broken / "runtime.png").unlink()
    html = (broken / "index.html").read_text(encoding="utf-8")
    (broken / "index.html").write_text(
        html.replace("</body>", "<script>noSuchFunction();</script></body>"), encoding="utf-8")
    dom, console = dump(chromium, tmp_path / "profile", broken / "index.html")
    assert body_attr(dom, "data-images-ok") == "3/4", dom[:500]
    assert body_attr(dom, "data-errors") not in (None, "0")
    assert any("noSuchFunction" in line for line in console), console


def test_report_renders_with_all_images_and_no_console_errors(chromium, report, tmp_path):
    out, index, _ = report
    dom, console = dump(chromium, tmp_path / "profile", index)
    assert "Grading report" in dom
    n_images = index.read_text(encoding="utf-8").count("<img ")
    assert n_images == 4
    assert body_attr(dom, "data-images-ok") == f"{n_images}/{n_images}", \
        "an image did not load in Chromium:\n" + dom[:1000]
    assert body_attr(dom, "data-errors") == "0"
    assert console == [], "console messages while loading the report:\n" + "\n".join(console)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run_chromium(chromium, tmp_path / "profile-shot", index.resolve().as_uri(),
                 "--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1280,2000")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, "screenshot looks empty"


def test_feedback_page_with_a_script_in_a_hint_runs_no_script(chromium, report, tmp_path):
    out, _, results = report
    r22 = next(r for r in results if r.student.login == "student22")
    page = out / "feedback" / f"{r22.key}.html"
    dom, console = dump(chromium, tmp_path / "profile", page)
    assert "&lt;script&gt;alert" in dom and "<script" not in dom.lower()
    assert console == [], console
