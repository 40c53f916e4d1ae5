"""The errors skiplab raises for a user's mistake, as opposed to a bug.

Every one derives from :class:`SkiplabError`; the ``skiplab`` command prints such an error in
one line (``skiplab CMD: error: ...``) and exits with status 2, while any other exception keeps
its traceback (a bug should be seen, not summarised). Each subclass also derives from the
built-in type older code caught (``ValueError``, ``TypeError``, ``RuntimeError``), so
``except ValueError`` keeps working.

This module imports nothing of skiplab, so every package may use it.
"""

from __future__ import annotations

__all__ = [
    "SkiplabError",
    "CheckpointError",
    "CheckpointVersionError",
    "CheckpointMismatchError",
    "DataMismatchError",
    "UnknownModelError",
    "ModelOptionError",
    "MissingExtraError",
    "OutputError",
    "ConversionWarning",
]


class SkiplabError(Exception):
    """A user error: a bad input, file or option, said in one sentence."""


class CheckpointError(SkiplabError, ValueError):
    """A file that is not a checkpoint skiplab can rebuild a model from."""


class CheckpointVersionError(CheckpointError):
    """A checkpoint written in a format version this skiplab does not know (a newer one)."""


class CheckpointMismatchError(CheckpointError):
    """A state dict does not fit the model (another architecture or configuration)."""


class DataMismatchError(SkiplabError, ValueError):
    """Data that do not fit a model: e.g. a classifier of 10 classes evaluated on 2 or 100."""


class UnknownModelError(SkiplabError, ValueError):
    """A model name that is not registered."""


class ModelOptionError(SkiplabError, TypeError):
    """A keyword that the model does not take."""


class MissingExtraError(SkiplabError, RuntimeError):
    """A package of an optional extra (e.g. ``skiplab[deploy]``) is not installed."""


class OutputError(SkiplabError, OSError):
    """An output that cannot be written: a file where a directory is expected, a directory
    that cannot be written in, a full disk. Nothing the user had is changed."""


class ConversionWarning(UserWarning):
    """Input that was converted to what skiplab works on (a complex SLC read as amplitude,
    greyscale or RGBA images made RGB): not an error, but never done without a word. The
    ``skiplab`` command prints it in one line (``skiplab CMD: warning: ...``)."""
