"""Shared by the reliability tests: reading the CLI's one-sentence refusal."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest


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
