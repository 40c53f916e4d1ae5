"""The study's memory on disk: ``<study>/study.json``, rewritten atomically after each step.

It holds the resolved configuration, the common number of training steps (fixed once,
so a resumed study trains exactly as the interrupted one would have), the runs and parts
that are finished with their headline numbers, and the wall-clock of each part. With
``--resume`` finished runs and parts are not redone; an unfinished training run
continues from its own ``checkpoints/last.pt`` (the trainer's resume).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from ..atomic import write_json
from .config import StudyConfig

STATE_FILE = "study.json"
FORMAT = "skiplab.study/1"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, fsync, rename): an
    interrupted write never leaves a broken state file."""
    write_json(path, data, default=jsonable)


class StudyState:
    """Read/write view of ``study.json``; every mutation is saved at once."""

    def __init__(self, directory: Path, config: StudyConfig, data: Optional[dict] = None) -> None:
        self.dir = Path(directory)
        self.config = config
        self.data: dict[str, Any] = data or {
            "format": FORMAT, "config": config.to_dict(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "steps": None, "calibration": {}, "runs": {}, "parts": {}, "timings": {}, "complete": False,
        }

    @property
    def path(self) -> Path:
        return self.dir / STATE_FILE

    # -- persistence --------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path) -> "StudyState":
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: {directory} is not a study directory "
                                    f"(start a new study without --resume)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); it was not written by skiplab study") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} has format {data.get('format')!r}, expected {FORMAT!r}")
        return cls(Path(directory), StudyConfig.from_dict(data["config"]), data)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    # -- runs and parts -----------------------------------------------------------------
    @property
    def steps(self) -> Optional[int]:
        return self.data["steps"]

    def set_steps(self, steps: int, calibration: dict) -> None:
        self.data["steps"], self.data["calibration"] = int(steps), calibration
        self.save()

    def run_done(self, name: str) -> bool:
        return self.data["runs"].get(name, {}).get("status") == "done"

    def run_summary(self, name: str) -> dict:
        return self.data["runs"][name]["summary"]

    def finish_run(self, name: str, summary: dict) -> None:
        self.data["runs"][name] = {"status": "done", "summary": summary}
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
