"""Interleaved timing of several ways to run one model: round after round, each variant
runs for about ``seconds`` of back-to-back calls, in an order rotated every round, so that
a machine whose speed drifts (shared cores, turbo, other jobs) drifts for all of them alike.
Latencies are per call (one batch); throughput is batch size / median latency."""

from __future__ import annotations

import os
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

Runner = Callable[[torch.Tensor], torch.Tensor]


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        return 0.0


def load_note(start: float, end: float, cores: int, peak: float = 0.0) -> str:
    """``load average 3.10 -> 3.48 on 2 cores`` (and the ``peak`` as a timing round began,
    when higher), flagged when any figure is above the core count: other jobs shared the CPU,
    so absolute speeds are low and only the ratios, measured in the same rounds, carry."""
    busy = max(start, end, peak) > cores
    return (
        f"load average {start:.2f} -> {end:.2f}"
        + (f" (up to {peak:.2f} during the rounds)" if peak > max(start, end) else "")
        + f" on {cores} cores"
        + (" ** busy machine: absolute speeds are low; the ratios were measured in the same rounds **" if busy else "")
    )


@dataclass
class Timing:
    latencies: list[float]  # seconds per call, every call of every round
    round_medians: list[float]  # median latency of each round
    round_loads: list[float] = field(default_factory=list)  # load average as each round began

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def speed_ratio(baseline: Timing, other: Timing) -> dict[str, float]:
    """How many times faster ``other`` ran than ``baseline``, from the same rounds: the ratio
    of their median latencies in each round, and the median, min and max of those ratios (a
    stall in one round moves one ratio, not the figure; two medians taken over different
    stretches of time would not be comparable)."""
    ratios = [b / o for b, o in zip(baseline.round_medians, other.round_medians)]
    return {"ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def time_interleaved(
    runners: dict[str, Runner],
    inputs: dict[str, torch.Tensor],
    *,
    rounds: int = 5,
    seconds: float = 1.0,
    min_calls: int = 2,
    warmup: int = 2,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Timing]:
    """Time every runner on its input (see the module documentation); ``warmup`` calls each
    first (compilation happens there, and the compilers' own warnings are silenced)."""
    with torch.no_grad():
        for name, run in runners.items():
            progress(f"warming up {name}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(warmup):
                    run(inputs[name])
        names = list(runners)
        lat: dict[str, list[float]] = {n: [] for n in names}
        medians: dict[str, list[float]] = {n: [] for n in names}
        loads: list[float] = []
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            loads.append(load_average())
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                run, x, calls = runners[name], inputs[name], []
                start = time.perf_counter()
                while len(calls) < min_calls or time.perf_counter() - start < seconds:
                    t0 = time.perf_counter()
                    run(x)
                    calls.append(time.perf_counter() - t0)
                lat[name] += calls
                medians[name].append(statistics.median(calls))
    return {n: Timing(lat[n], medians[n], loads) for n in names}
