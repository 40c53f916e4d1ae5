"""What bench measures with: the int8 compile's inductor freezing stays with that compile (a
``compiled_bf16`` timed beside it runs without), speed ratios from the same rounds, and the
load-average flag."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skiplab.deploy.timing import Timing, load_note, speed_ratio, time_interleaved


@pytest.mark.slow
def test_int8_compile_freezes_its_own_graph_only(monkeypatch):
    import torch._inductor.config as inductor_config
    import torch._inductor.freezing as freezing
    from skiplab.deploy.quantize import compile_int8

    frozen = []
    real = freezing.freeze

    def spy(*args, **kwargs):  # inductor calls freeze() on a graph it compiles with freezing on
        frozen.append(inductor_config.freezing)
        return real(*args, **kwargs)

    monkeypatch.setattr(freezing, "freeze", spy)
    before = inductor_config.freezing
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        compile_int8(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval())(x)
        assert frozen == [True]  # the int8 graph was frozen ...
        assert inductor_config.freezing == before  # ... and the process-wide flag is as it was
        torch.compile(nn.Sequential(nn.Conv2d(3, 5, 3), nn.Tanh()).eval())(x)
    assert frozen == [True]  # the next compile (compiled_bf16) is not frozen


def test_speed_ratios_come_from_the_same_rounds():
    base = Timing([1.0] * 3, [1.0, 1.0, 9.0])  # round 3: the machine stalled for both
    fast = Timing([0.5] * 3, [0.5, 0.5, 4.5])
    assert speed_ratio(base, fast) == {"ratio": 2.0, "ratio_min": 2.0, "ratio_max": 2.0}
    timings = time_interleaved(
        {"a": lambda x: x + 1, "b": lambda x: x * 2},
        {"a": torch.ones(2), "b": torch.ones(2)},
        rounds=2,
        seconds=0.0,
        warmup=0,
    )
    assert len(timings["a"].round_loads) == 2 and timings["a"].round_loads is timings["b"].round_loads


def test_load_note_flags_a_busy_machine():
    assert "busy" not in load_note(0.5, 1.0, 2)
    assert "busy machine" in load_note(0.5, 1.0, 2, peak=3.0) and "up to 3.00" in load_note(0.5, 1.0, 2, 3.0)
    assert "busy machine" in load_note(2.5, 1.0, 2)
