"""Shared by the reliability tests: the ``hapfpga run`` command line of a small digits run, and reading the CLI's
one-sentence refusal."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml


def run_argv(tmp: Path, model: str, *, max_train: int, max_test: int, n_samples: int, **extra) -> list[str]:
    """``hapfpga run`` arguments for a config written to ``tmp/cfg.yaml``: ``model.name: model`` on Pynq-Z2, one
    epoch on ``max_train``/``max_test`` digits, verification on ``n_samples``; ``extra`` adds or replaces sections;
    the run's folder is ``tmp/out``."""
    cfg = {"board": "pynq-z2", "model": {"name": model},
           "data": {"name": "digits", "max_train": max_train, "max_test": max_test},
           "train": {"epochs": 1}, "verify": {"n_samples": n_samples}, **extra}
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return ["run", str(p), "--out", str(tmp / "out")]


@pytest.fixture
def one_sentence_error(capsys) -> Callable[[], str]:
    """A reader of what the CLI printed on stderr since the last read: its single ``hapfpga: error:`` line, which
    must be one sentence (ends with a full stop, no second sentence), with no traceback and no internal error."""

    def read() -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err and "internal error" not in err, err[-2000:]
        errors = [ln for ln in err.splitlines() if ln.startswith("hapfpga: error:")]
        assert len(errors) == 1, err[-2000:]
        msg = errors[0][len("hapfpga: error:"):].strip()
        assert msg.endswith(".") and not re.search(r"[.;]\s+[A-Z][a-z]", msg), msg
        return msg

    return read
