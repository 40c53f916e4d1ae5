"""An experiment's memory on disk: one JSON state file, rewritten atomically after each step.

It holds which experiment it is (a dotted path to its class, so a worker process or a
scheduler node can rebuild it), the resolved configuration, the common number of training
steps (fixed once, so a resumed experiment trains exactly what the interrupted one would
have, and ``--steps`` makes it the same on every machine), the calibration that chose them,
each run's status and summary numbers, the parts that are finished, and the wall-clock of
each phase. Written only by the main process; a worker reports through its run directory
(``trained.json``), which the runner folds in.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from ..atomic import write_json

FORMAT = "skiplab.experiment/2"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, fsync, rename): an
    interrupted write never leaves a broken state file."""
    write_json(path, data, indent=1, default=jsonable)


def read_json(path: Path, what: str) -> dict:
    """A JSON file written by skiplab, or a ValueError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {path.parent} is not {what} directory (start a new one without --resume)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); it was not written by skiplab") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a skiplab state")
    return data


class ExperimentState:
    """Read/write view of an experiment's state file; every mutation is saved at once."""

    def __init__(self, path: Path, experiment: str, config: dict, data: Optional[dict] = None) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = data or {
            "format": FORMAT,
            "experiment": experiment,
            "config": config,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "steps": None,
            "calibration": {},
            "runs": {},
            "parts": {},
            "timings": {},
            "complete": False,
        }

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def experiment(self) -> str:
        return self.data["experiment"]

    @property
    def config(self) -> dict:
        return self.data["config"]

    @classmethod
    def load(cls, path: Path, what: str = "an experiment") -> "ExperimentState":
        data = read_json(path, what)
        if data.get("format") != FORMAT:
            raise ValueError(
                f"{path} has format {data.get('format')!r}, expected {FORMAT!r} "
                f"(written by another skiplab version: start a new one)"
            )
        return cls(Path(path), data["experiment"], data["config"], data)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    # -- steps ----------------------------------------------------------------------------
    @property
    def steps(self) -> Optional[int]:
        return self.data["steps"]

    def set_steps(self, steps: int, calibration: dict) -> None:
        self.data["steps"], self.data["calibration"] = int(steps), calibration
        self.save()

    # -- runs and parts -------------------------------------------------------------------
    def run_done(self, name: str) -> bool:
        return self.data["runs"].get(name, {}).get("status") == "done"

    def run_summary(self, name: str) -> dict:
        return self.data["runs"][name]["summary"]

    def finish_run(self, name: str, trained: dict, summary: dict) -> None:
        self.data["runs"][name] = {"status": "done", "trained": trained, "summary": summary}
        self.save()

    def part_done(self, part: str) -> bool:
        return self.data["parts"].get(part) == "done"

    def finish_part(self, part: str, seconds: float) -> None:
        self.data["parts"][part] = "done"
        self.add_time(part, seconds)

    def add_time(self, what: str, seconds: float) -> None:
        self.data["timings"][what] = round(self.data["timings"].get(what, 0.0) + seconds, 1)
        self.save()

    def finish(self) -> None:
        self.data["complete"] = True
        self.save()


def jsonable(value: Any) -> Any:
    """numpy scalars and arrays, paths and tuples in results -> JSON types."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")
