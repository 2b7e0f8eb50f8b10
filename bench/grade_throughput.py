#!/usr/bin/env python3
"""Grading throughput: `autograder grade` against `otter run`, measured in the same run.

    .venv/bin/python bench/grade_throughput.py [--n 1000] [--small 100] [--otter-sample 20]

Generates N distinct submissions (a fixed, seeded mix of the sample corpus: correct, wrong,
broken and a few hostile), grades them with `autograder grade` (full isolation), grades a
sample of them with `otter run` (the same zip, as many at a time as our workers), and prints
submissions per second for each, the ratio, peak RSS of the whole process tree, and whether
the sampled scores agree. A second, smaller batch shows whether throughput and memory per
submission stay flat. This is a benchmark, not a test: it asserts nothing, it reports.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
ZIP = ROOT / "dist" / "differentiation" / "autograder.zip"
BIN = Path(sys.executable).parent

HOSTILE_CELLS = {
    "hostile_infinite_loop": "while True:\n    pass\n",
    "hostile_exit": "import os\nos._exit(0)\n",
    "hostile_fork_bomb": "import os\nfor _ in range(200):\n    try:\n        os.fork()\n    except OSError:\n        break\n",
    "hostile_memory": "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n",
}


class PeakRSS:
    """Samples the memory of a process and all its descendants: the sum of their PSS
    (proportional set size), because forked workers share most pages and a plain RSS sum
    would count torch once per process. The plain RSS sum is kept too, as an upper bound."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.peak_rss_sum = 0
        self.samples: list[int] = []
        self.supervisor_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                total, rss = 0, 0
                for p in procs:
                    try:
                        info = p.memory_full_info()
                        total += info.pss
                        rss += info.rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
                self.peak_rss_sum = max(self.peak_rss_sum, rss)
                self.samples.append(total)
                self.supervisor_peak = max(self.supervisor_peak, self.process.memory_info().rss)
            except psutil.Error:
                pass
            self._stop.wait(0.05)

    def stop(self) -> "PeakRSS":
        self._stop.set()
        self._thread.join()
        return self

    @property
    def median(self) -> int:
        ordered = sorted(self.samples) or [0]
        return ordered[len(ordered) // 2]


def make_batch(folder: Path, n: int, seed: int) -> list[Path]:
    """n distinct notebooks: corpus files (mostly), a few broken and hostile ones."""
    import nbformat

    rng = random.Random(seed)
    corpus = sorted(p for p in CORPUS.glob("*.ipynb"))
    notebooks = {p.stem: nbformat.read(p, as_version=4) for p in corpus}
    solution = notebooks.get("solution") or next(iter(notebooks.values()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        roll = rng.random()
        path = folder / f"student{i:05d}.ipynb"
        if roll < 0.02:   # broken: truncated JSON
            text = nbformat.writes(solution)
            path.write_text(text[: len(text) // 2])
        else:
            if roll < 0.025:   # hostile code added to the correct notebook, in q3's cell
                kind = rng.choice(sorted(HOSTILE_CELLS))
                nb = nbformat.from_dict(json.loads(nbformat.writes(solution)))
                q3 = next(j for j, c in enumerate(nb.cells) if 'grader.check("q3")' in c.source)
                nb.cells.insert(q3, nbformat.v4.new_code_cell(HOSTILE_CELLS[kind]))
            else:
                name = rng.choice(sorted(notebooks))
                nb = nbformat.from_dict(json.loads(nbformat.writes(notebooks[name])))
            nb.metadata["bench_id"] = i   # distinct content: no two files share a result
            nbformat.write(nb, path)
        paths.append(path)
    return paths


def grade_with_autograder(folder: Path, out: Path, containers: int) -> tuple[float, "PeakRSS"]:
    command = [str(BIN / "autograder"), "grade", "-a", str(ZIP), "-o", str(out), "-q",
               "--containers", str(containers), str(folder)]
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakRSS(process.pid)
    stdout, stderr = process.communicate()
    seconds = time.monotonic() - start
    memory = sampler.stop()
    if process.returncode != 0:
        sys.exit(f"autograder grade failed:\n{stdout}\n{stderr}")
    return seconds, memory


def otter_run(path: Path, workdir: Path) -> dict[str, float]:
    out = workdir / path.stem
    out.mkdir(parents=True)
    subprocess.run([str(BIN / "otter"), "run", "-a", str(ZIP), "-o", str(out), str(path)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    results = out / "results.json"
    if not results.is_file():
        return {}
    tests = json.loads(results.read_text()).get("tests", [])
    return {t["name"]: float(t["score"]) for t in tests if "score" in t and t["name"].startswith("q")}


def read_scores(out: Path) -> dict[str, dict[str, float]]:
    with open(out / "final_grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    questions = [k for k in rows[0] if k.startswith("q")]
    return {r["file"]: {q: float(r[q]) for q in questions} for r in rows if r["file"] != "points-per-question"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--small", type=int, default=100, help="size of the flatness comparison batch")
    parser.add_argument("--otter-sample", type=int, default=20)
    parser.add_argument("--containers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--keep", action="store_true", help="keep the generated batch and outputs")
    args = parser.parse_args()
    if not ZIP.is_file():
        sys.exit(f"{ZIP} is missing: run `make build` first")

    work = Path(tempfile.mkdtemp(prefix="autograder-bench-"))
    try:
        print(f"machine: {os.cpu_count()} cores; workers: {args.containers}")
        runs = {}
        for size in sorted({args.small, args.n}):
            folder = work / f"batch{size}"
            make_batch(folder, size, args.seed)
            seconds, memory = grade_with_autograder(folder, work / f"out{size}", args.containers)
            runs[size] = (seconds, memory)
            mb = 2**20
            print(f"autograder grade, {size:5d} submissions: {seconds:7.2f} s wall, "
                  f"{size / seconds:7.2f} submissions/s; memory of the whole process tree: peak "
                  f"{memory.peak / mb:.0f} MB PSS, median {memory.median / mb:.0f} MB PSS "
                  f"(plain RSS sum, counting shared pages once per process: {memory.peak_rss_sum / mb:.0f} MB); "
                  f"supervisor peak RSS {memory.supervisor_peak / mb:.0f} MB")
        big = max(runs)
        ours_rate = big / runs[big][0]

        rng = random.Random(args.seed + 1)
        all_files = sorted((work / f"batch{big}").glob("*.ipynb"))
        sample = rng.sample(all_files, min(args.otter_sample, len(all_files)))
        otter_dir = work / "otter"
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.containers) as pool:
            otter_scores = dict(zip((p.name for p in sample), pool.map(lambda p: otter_run(p, otter_dir), sample)))
        otter_seconds = time.monotonic() - start
        otter_rate = len(sample) / otter_seconds
        print(f"otter run ({args.containers} at a time), {len(sample)} submissions: {otter_seconds:7.2f} s wall, "
              f"{otter_rate:7.2f} submissions/s")
        print(f"ratio (autograder grade / otter run): {ours_rate / otter_rate:.1f}x")

        ours = read_scores(work / f"out{big}")
        agree, differ = 0, []
        for name, theirs in otter_scores.items():
            mine = ours.get(name)
            if mine is not None and theirs and all(abs(mine[q] - theirs.get(q, -1)) < 1e-9 for q in mine):
                agree += 1
            else:
                differ.append((name, mine, theirs))
        print(f"sampled scores agree: {agree}/{len(otter_scores)}")
        for name, mine, theirs in differ:
            print(f"  differs: {name}: autograder {mine} / otter {theirs}")
        if len(runs) == 2:
            small, big = min(runs), max(runs)
            (s_small, m_small), (s_big, m_big) = runs[small], runs[big]
            marginal = (big - small) / (s_big - s_small) if s_big > s_small else float("nan")
            startup = s_small - small / marginal if marginal == marginal else float("nan")
            print(f"flatness {small} -> {big}: {s_small / small * 1000:.1f} -> {s_big / big * 1000:.1f} ms "
                  f"per submission overall; the {big - small} extra submissions ran at {marginal:.2f}/s "
                  f"(fixed start-up about {startup:.1f} s); median memory {m_small.median / 2**20:.0f} -> "
                  f"{m_big.median / 2**20:.0f} MB PSS, supervisor {m_small.supervisor_peak / 2**20:.0f} -> "
                  f"{m_big.supervisor_peak / 2**20:.0f} MB; peak {m_small.peak / 2**20:.0f} -> "
                  f"{m_big.peak / 2**20:.0f} MB PSS (peaks come from the hostile memory bombs in the mix, "
                  f"each bounded by --memory-mb)")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
