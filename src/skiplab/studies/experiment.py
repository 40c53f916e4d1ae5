"""What an experiment on the runner is: a set of training runs and what to do with them.

An :class:`Experiment` (the skip-connection study, the autoencoder ablation, ...) says
which :class:`Run` s it trains -- (network, seed) pairs, each an independent
:class:`~skiplab.train.Trainer` run with its own directory and resume -- how each one's
:class:`~skiplab.train.TrainConfig` reads for a given number of steps, which data in
memory (if any) the runs see, and how a finished run is summarised. The
:class:`~skiplab.studies.runner.Runner` does the rest: state, steps, seeds, resume,
worker processes, curves.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .config import Budget


@dataclass(frozen=True)
class Run:
    """One training run: ``key`` names what is compared (a network, a variant), ``seed``
    its initialisation and batch order; ``name`` (``<key>-s<seed>``) is its directory."""

    key: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.key}-s{self.seed}"


class Experiment(ABC):
    """The experiment-specific half of the runner (see the module documentation)."""

    #: default file name of the state in the experiment directory
    state_file: str = "experiment.json"
    #: what the experiment is called in messages ("a study", "an ablation")
    what: str = "an experiment"

    # -- (de)serialisation: a worker rebuilds the experiment from the state ---------------
    @abstractmethod
    def to_dict(self) -> dict:
        """The resolved configuration (JSON types)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, config: dict) -> "Experiment":
        """The experiment back from :meth:`to_dict`."""

    @classmethod
    def dotted(cls) -> str:
        return f"{cls.__module__}:{cls.__qualname__}"

    # -- inputs -------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the inputs (load the data, ...) and raise ``ValueError`` naming what is
        wrong; the runner calls it before it writes any state."""

    # -- runs -----------------------------------------------------------------------------
    @abstractmethod
    def runs(self) -> list[Run]:
        """Every run to train, in the order to train them."""

    @property
    @abstractmethod
    def budget(self) -> Budget:
        """Minutes for all runs together, or steps (or epochs) per run."""

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch of one run (turns an epochs budget into steps)."""

    def run_steps(self, run: Run, steps: int) -> int:
        """The steps ``run`` trains when the experiment's common number is ``steps`` (all of
        them by default; a shorter training length trains a fraction)."""
        return steps

    @abstractmethod
    def train_config(self, run: Run, steps: int, run_dir: Optional[Path], threads: int):
        """The :class:`~skiplab.train.TrainConfig` of ``run`` for the common ``steps``
        (it trains :meth:`run_steps` of them)."""

    def existing(self, run: Run) -> Optional[Path]:
        """The checkpoint of ``run`` trained before, outside this experiment, to reuse instead
        of training it (None: the runner trains it). A reused run is summarised and measured
        like a trained one; its directory is the checkpoint's run directory."""
        return None

    def datasets(self, run: Run) -> tuple[Any, Any]:
        """(train_set, eval_set) in memory for ``run``, or (None, None): the trainer loads
        ``config.data`` itself (then ``skiplab train --config`` can run it alone)."""
        return None, None

    @abstractmethod
    def summarise(self, run: Run, run_dir: Path, trained: dict) -> dict:
        """Numbers of a trained run for the state (the main process measures them)."""


def experiment_class(dotted: str) -> type[Experiment]:
    """The class a state file names (``module:Class``)."""
    module, _, name = dotted.partition(":")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise ValueError(f"{dotted!r} is not a skiplab experiment")
    return cls
