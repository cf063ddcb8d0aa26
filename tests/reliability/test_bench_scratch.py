"""Benchmarks delete their default temporary work folder at exit and keep a ``--work`` folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

CHILD = """
import sys
sys.path.insert(0, {bench!r})
from scratch import work_dir
tmp = work_dir(None, "hap_scratch_test_")
(tmp / "build").mkdir()
(tmp / "build" / "big.bin").write_bytes(b"0" * 1024)
kept = work_dir({given!r}, "unused_")
(kept / "result.json").write_text("{{}}")
print(tmp)
"""


def test_temporary_work_folder_is_removed_at_exit_and_given_one_is_kept(tmp_path):
    given = tmp_path / "nested" / "work"
    out = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(BENCH), given=str(given))],
                         capture_output=True, text=True, check=True).stdout.strip()
    tmp = Path(out)
    assert tmp.name.startswith("hap_scratch_test_")
    assert not tmp.exists()  # deleted at exit, contents and all
    assert (given / "result.json").read_text() == "{}"  # created and kept


def test_every_benchmark_with_a_work_option_uses_the_scratch_folder():
    """A benchmark that makes its own temporary work folder (not through scratch.work_dir) leaks FINN builds."""
    offenders = [p.name for p in BENCH.glob("*.py")
                 if "tempfile.mkdtemp(" in p.read_text() and "args.work" in p.read_text()
                 and "work_dir(args.work" not in p.read_text()]
    assert offenders == []
