"""Stop a training run cleanly on SIGINT (Ctrl-C), SIGTERM (what job schedulers send) or
SIGHUP (the terminal or SSH session that started it went away; a run started under ``nohup``
ignores SIGHUP, and keeps ignoring it).

The first signal only sets a flag; the loop reads it after each optimiser step, writes
``last.pt`` and raises :class:`TrainingInterrupted`, which the ``skiplab train`` command
turns into the exact ``--resume`` command and exit status 128 + signal (130 / 143 / 129). A second
signal is handled as it would have been without skiplab -- the previous handler runs
(Python's default raises KeyboardInterrupt at once) or, when that was the system default,
the process dies of the signal -- so a stuck save can always be abandoned.

Handlers are installed only in the main thread (Python allows no other) and only while the
loop runs; the previous ones are restored when it returns, so a program that calls ``fit()``
keeps its own handling outside of it.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Optional

SIGHUP = getattr(signal, "SIGHUP", None)  # not on Windows
SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((SIGHUP,) if SIGHUP is not None else ())


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving ``checkpoint`` (None when the run writes
    nothing to disk). ``exit_code`` is the shell's convention, 128 + the signal number."""

    def __init__(self, signum: int, checkpoint: Optional[Path], step: int, where: str) -> None:
        self.signum, self.checkpoint, self.step, self.where = signum, checkpoint, step, where
        self.exit_code = 128 + signum
        self.signal_name = signal.Signals(signum).name
        self.summary = f"interrupted by {self.signal_name} at {where}; " + (
            f"saved {checkpoint}" if checkpoint is not None else "nothing saved (save is off)"
        )
        super().__init__(
            self.summary
            + (f" (continue with resume=True and out={str(checkpoint.parent.parent)!r})" if checkpoint else "")
        )

    def __reduce__(self):
        """Rebuilt from its arguments, so it crosses from a worker process (``--jobs``)."""
        return type(self), (self.signum, self.checkpoint, self.step, self.where)


class StopSignals:
    """Context manager: while active, SIGINT/SIGTERM/SIGHUP set :attr:`signum` instead of
    stopping the process (a second one gets the previous handling, see the module); an
    ignored SIGHUP (``nohup``) stays ignored."""

    def __init__(self, signals: tuple = SIGNALS) -> None:
        self.signals = signals
        self.signum: Optional[int] = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                if sig == SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
                    continue  # started under nohup: the hang-up is meant to be ignored
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the previous handlers back (idempotent)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signum is None:
            self.signum = signum
            print(
                f"\n{signal.Signals(signum).name}: stopping after this step and saving "
                f"(send it again to stop at once, without saving)",
                file=sys.stderr,
                flush=True,
            )
            return
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.restore()
        print(f"{signal.Signals(signum).name} again: stopping at once", file=sys.stderr, flush=True)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.raise_signal(signum)  # the default action: the process dies of the signal
