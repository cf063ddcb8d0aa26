"""Thin command-line front end: ``hapfpga <command> ...``.

Commands are listed explicitly in ``COMMANDS`` (name -> module); each module provides
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (torch,
finn) happen inside ``run``, so ``hapfpga --help`` stays fast.

User errors (``HapError``) print one sentence to stderr and exit 2; anything else is a bug:
exit 1, the traceback goes to a log file and stderr gets a short pointer to it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path

from .errors import INTERNAL_ERROR_EXIT, HapError

__all__ = ["main", "COMMANDS"]

#: The registry of sub-commands, in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "run": "hapfpga.commands.run",
    "boards": "hapfpga.commands.boards",
    "build": "hapfpga.commands.build",
    "estimate": "hapfpga.commands.estimate",
    "fold": "hapfpga.commands.fold",
    "prune": "hapfpga.commands.prune",
    "rtlsim": "hapfpga.commands.rtlsim",
    "synth": "hapfpga.commands.synth",
    "search-worker": "hapfpga.commands.search_worker",
    "search-front": "hapfpga.commands.search_front",
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hapfpga",
        description="Hardware-aware quantisation, pruning and folding for FINN accelerators on PYNQ boards.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def _crash_log_path(args: argparse.Namespace | None) -> Path:
    out = getattr(args, "out", None) if args is not None else None
    if out:
        folder = Path(out).parent if Path(out).suffix else Path(out)  # --out F.json names a file
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder / "hapfpga-error.log"
        except OSError:
            pass
    return Path(tempfile.gettempdir()) / f"hapfpga-error-{os.getpid()}.log"


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except HapError as e:
        print(f"hapfpga: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("hapfpga: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    except Exception:  # a bug: keep the traceback, point at it
        log = _crash_log_path(args)
        try:
            log.write_text(traceback.format_exc())
            where = f"the traceback is in {log}"
        except OSError:
            where = "the traceback follows"
            traceback.print_exc()
        print(f"hapfpga: internal error (a bug in hapfpga); {where}.", file=sys.stderr)
        return INTERNAL_ERROR_EXIT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
