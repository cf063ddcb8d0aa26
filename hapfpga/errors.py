"""One error hierarchy for hapfpga.

User errors (``HapError`` and subclasses) carry one sentence that names the cause and the fix;
the CLI prints it to stderr and exits with code 2, without a traceback. Anything else that escapes
is a bug: exit 1, traceback in the run's log file.
"""

from __future__ import annotations

__all__ = [
    "HapError",
    "ConfigError",
    "DataError",
    "UnsupportedLayerError",
    "InfeasibleError",
    "SolverTimeLimitError",
    "ToolMissingError",
    "VerificationError",
    "USER_ERROR_EXIT",
    "INTERNAL_ERROR_EXIT",
]

USER_ERROR_EXIT = 2
INTERNAL_ERROR_EXIT = 1


class HapError(Exception):
    """A user-facing error: the message is one sentence naming the cause and the fix."""

    exit_code = USER_ERROR_EXIT

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # one line, always
        super().__init__(message)
        self.message = message


class ConfigError(HapError):
    """Bad configuration: missing/unknown key, wrong type, unknown board, unreadable file."""


class DataError(HapError):
    """A dataset that cannot be used as given (wrong keys, shapes, dtypes, NaNs, labels)."""


class UnsupportedLayerError(HapError):
    """A layer type the estimator, pruner or exporter does not model."""


class InfeasibleError(HapError):
    """No design meets the request (budget or FPS target)."""


class SolverTimeLimitError(InfeasibleError):
    """The folding solver hit its time limit before it found any design: unknown, not proven infeasible."""


class ToolMissingError(HapError):
    """An external tool (Vivado, Verilator, a C++ compiler, a board) is not available."""


class VerificationError(HapError):
    """Two stages of the flow disagree beyond the stated tolerance."""
