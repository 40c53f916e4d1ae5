"""How an interrupted experiment (``skiplab study``, ``skiplab ablate autoencoder``) says how
to continue: the exact ``--resume`` command, whatever part it was in.

    directory = experiment_directory(args.out, args.resume, "study", STATE_FILE, "a study")
    with resume_hint("study", directory, STATE_FILE):
        run_study(config, out=directory, resume=args.resume, ...)

A signal during training is handled by each run (it saves its last.pt); one during the
measurements after it (SIGINT as Ctrl-C, SIGTERM as a scheduler sends) stops at once --
every finished run and part is on disk -- and the command ends with one line naming the
directory to ``--resume`` and exit status 130 / 143. The same options may be given again
with ``--resume`` (they are checked against the stored ones), so the printed command and
"the same command with --resume" both work.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from pathlib import Path
from typing import Iterator, Optional


def experiment_directory(out: Optional[str], resume: bool, prefix: str, state_file: str, what: str) -> Path:
    """``out``, or the newest unfinished ``runs/<prefix>-*`` (resume), or a new one."""
    from ..studies.runner import latest_unfinished, new_directory

    if out is not None:
        return Path(out)
    return latest_unfinished(prefix, state_file, what) if resume else new_directory(prefix)


def _sigterm_raises(signum, frame) -> None:
    err = KeyboardInterrupt()
    err.exit_code = 128 + signum  # type: ignore[attr-defined]
    raise err


@contextlib.contextmanager
def resume_hint(command: str, directory: Path, state_file: str) -> Iterator[None]:
    """A KeyboardInterrupt (SIGINT, or SIGTERM while inside) leaving the block carries
    ``resume_command``, ``skiplab COMMAND --resume --out DIRECTORY``, once the experiment's
    state is on disk (before that there is nothing to continue)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_raises) if main else None
    try:
        yield
    except KeyboardInterrupt as err:
        if not (directory / state_file).is_file():
            raise
        err.resume_command = shlex.join(
            [
                "skiplab",
                *command.split(),
                "--resume",  # type: ignore[attr-defined]
                "--out",
                str(directory),
            ]
        )
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
