"""Encode and decode time and peak memory per megapixel of each variant of the held-out
ablation beside OpenJPEG's on the same scene (:func:`.codec_speed.measure`: each measurement
in a fresh process, a real held-out scene mirrored into a ``size`` x ``size`` mosaic).

Each variant is measured with the ``last.pt`` of its run on one fold (its highest rate level:
the transforms' cost hardly depends on the level). ``speed.json`` is rewritten after each
variant and keyed by checkpoint, step, size and threads, so a rerun measures only what changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ...atomic import write_json
from . import codec_speed
from .hyperprior_runs import VARIABLE_RATE, run_state


def variant_speed(
    runs: Path, fold: str, transforms: Sequence[str], scene: Path, out: Path, size: int, threads: int, log=print
) -> dict:
    """``{transform: {"key", "size", "threads", "rows"} or {"trained": False}}``, also written
    to ``out`` (see the module documentation)."""
    previous = json.loads(Path(out).read_text()) if Path(out).is_file() else {}
    result: dict = {}
    for t in transforms:
        run_dir = Path(runs) / f"{fold}-{t}-{VARIABLE_RATE}"
        state = run_state(run_dir)
        if not state.has_checkpoint:
            result[t] = {"trained": False}
            continue
        checkpoint = run_dir / "checkpoints" / "last.pt"
        key = f"{checkpoint}:step {state.step}:{size} px:{threads} threads:{Path(scene).name}"
        if previous.get(t, {}).get("key") == key:
            result[t] = previous[t]
            continue
        log(f"speed: {t} ({run_dir.name}) on a {size} px mosaic of {Path(scene).name}, {threads} threads")
        result[t] = {"key": key, "trained": True, **codec_speed.measure(str(checkpoint), Path(scene), size, threads)}
        write_json(out, {**previous, **result}, indent=1)
    write_json(out, result, indent=1)
    return result


__all__ = ["variant_speed"]
