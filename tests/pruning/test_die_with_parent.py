"""Worker processes end with the process that started them (``hapfpga.pruning.parallel.die_with_parent``).

Stop 29: a pruning benchmark stopped with ``kill`` left its spawned searches and their FPS-predictor workers
computing on as orphans. Here a real parent process starts a spawn pool (as the predictor and the benchmark do)
and a fork pool (as the greedy step's accuracy workers do), each worker reporting its pid and then waiting
forever; the parent is killed with SIGKILL and the workers must be gone within 10 s. The control arm runs the
same pool without the initializer and finds its worker still alive (then kills it), so the test can fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

PARENT = textwrap.dedent("""
    import multiprocessing as mp, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from hapfpga.pruning.parallel import die_with_parent

    def report(path):
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(600)

    if __name__ == "__main__":
        ctx, init, out = sys.argv[1], sys.argv[2] == "yes", sys.argv[3]
        if ctx == "spawn":
            pool = ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                                       initializer=die_with_parent if init else None)
            for _ in range(2):
                pool.submit(report, out)
        else:
            pool = mp.get_context("fork").Pool(2, initializer=die_with_parent if init else None)
            for _ in range(2):
                pool.apply_async(report, (out,))
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().split(")")[-1].split()[0] != "Z"


def _workers_after_parent_killed(tmp_path: Path, ctx: str, init: bool) -> list[int]:
    script, out = tmp_path / "parent.py", tmp_path / f"pids_{ctx}_{init}.txt"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen([sys.executable, str(script), ctx, "yes" if init else "no", str(out)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().split()) < 2):
        time.sleep(0.2)
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) == 2, "the workers did not start"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10  # the kernel signals at once; the control arm waits this long
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return left


@pytest.mark.parametrize("ctx", ["spawn", "fork"])
def test_workers_end_when_their_parent_is_killed(tmp_path, ctx):
    assert _workers_after_parent_killed(tmp_path, ctx, init=True) == []


def test_without_it_a_killed_parent_leaves_its_workers_running(tmp_path):
    assert len(_workers_after_parent_killed(tmp_path, "spawn", init=False)) == 2
