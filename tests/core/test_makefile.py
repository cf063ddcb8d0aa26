"""`make test` works for any user: no Makefile target calls a system package manager (issue 26).

Two checks: the Makefile's own text (recipes and variables, comments left out), and what ``make -n -B`` would
run for every phony target (variables expanded, nothing executed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: System package managers (and the usual ways to get root for one).
PACKAGE_MANAGERS = ("apt", "apt-get", "aptitude", "dpkg", "dnf", "yum", "zypper", "pacman", "apk", "brew", "port",
                    "snap", "emerge", "pkg", "sudo", "su", "doas")
_CALL = re.compile(r"(?:^|[\s;&|({`]|\$\()(" + "|".join(map(re.escape, PACKAGE_MANAGERS)) + r")(?=\s|$|;)", re.M)


def package_manager_calls(text: str) -> list[str]:
    """The package-manager commands called in shell/Makefile text (``#`` comments ignored)."""
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    return sorted({m.group(1) for line in lines for m in _CALL.finditer(line)})


def test_the_detector_finds_package_manager_calls():
    assert package_manager_calls("x:\n\tcommand -v chromium || apt-get install -y chromium\n") == ["apt-get"]
    assert package_manager_calls("\tsudo make install; brew install verilator") == ["brew", "sudo"]
    assert package_manager_calls("\t$(shell dnf list)") == ["dnf"]
    # words that merely contain a manager's name, and comments, are not calls
    assert package_manager_calls("\tpip install -q --upgrade pip  # not apt-get\n\tpytest tests/apt\n") == []


def test_no_makefile_target_calls_a_system_package_manager():
    make = (ROOT / "Makefile").read_text()
    assert package_manager_calls(make) == []
    targets = re.search(r"^\.PHONY:(.*)$", make, re.M).group(1).split()
    assert {"install", "demo", "test"} <= set(targets)
    if shutil.which("make") is None:
        pytest.skip("no make on PATH: checked the Makefile's text only")
    for target in targets:  # what each target would run, variables expanded; -n runs nothing, -B ignores stamps
        out = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert package_manager_calls(out.stdout) == [], (target, out.stdout)
