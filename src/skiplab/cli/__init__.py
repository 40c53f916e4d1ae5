"""The ``skiplab`` command.

Each subcommand is one module in this package with two functions:
``add_parser(subparsers)`` (which calls ``parser.set_defaults(run=run)``) and
``run(args) -> int``. The work itself lives in importable library functions; these
modules only parse arguments and print; each imports what its work needs inside ``run``, so
``skiplab --help`` imports argparse and these modules, not torch.

Errors: a :class:`~skiplab.errors.SkiplabError` (a user's mistake, said in one sentence) is
printed in one line and the command exits with 2; so are ``ValueError`` and
``FileNotFoundError``, which the data, config and raster readers still raise for bad inputs
(the one-line cases of tests/test_cli_errors.py); so is an ``OSError`` of the file system
(a full disk, a read-only directory: :data:`skiplab.writable.WRITE_ERRNOS`), which is the
machine's state, not a bug (tests/test_faults.py). Anything else is a bug and keeps its
traceback. ``SKIPLAB_DEBUG=1`` shows the traceback of a one-line error too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing
from typing import Optional, Sequence

from ..errors import SkiplabError

# Subcommand modules under skiplab.cli, in the order --help lists them.
COMMANDS = [
    "study",
    "summary",
    "models",
    "train",
    "eval",
    "data",
    "ablate",
    "reconstruct",
    "sar_rd",
    "export",
    "quantize",
    "bench",
    "prune",
    "distill",
]


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2), pointing at
    ``--help`` instead of printing the usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = OneLineErrorParser(
        prog="skiplab",
        description="Residual and skip-connection networks: build, train, study and export them.",
        epilog="Run 'skiplab COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"skiplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def _one_line_warnings(command: str) -> None:
    """A :class:`~skiplab.errors.ConversionWarning` (what skiplab converted in the input) is
    one line on stderr, ``skiplab CMD: warning: ...``; other warnings keep Python's form."""
    import warnings

    from ..errors import ConversionWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ConversionWarning):
            print(f"skiplab {command}: warning: {message}", file=sys.stderr, flush=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line as given (train prints it back to resume)
    _one_line_warnings(args.command)
    try:
        return int(args.run(args) or 0)
    except (SkiplabError, ValueError, FileNotFoundError) as err:
        if os.environ.get("SKIPLAB_DEBUG"):
            raise
        print(f"skiplab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        from ..writable import WRITE_ERRNOS, describe_os_error

        if err.errno not in WRITE_ERRNOS or os.environ.get("SKIPLAB_DEBUG"):
            raise
        print(f"skiplab {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a training run inside saved its last.pt and says so
        summary = getattr(err, "summary", None)
        resume = getattr(err, "resume_command", None)  # an experiment's (cli/resume.py)
        advice = getattr(args, "resume_advice", "run the command again with --resume to continue")
        note = (f": {summary}" if summary else "") + (
            f"; continue with: {resume}" if resume else f"; {advice}" if summary else ""
        )
        print(f"skiplab {args.command}: interrupted{note}", file=sys.stderr)
        return getattr(err, "exit_code", 130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
