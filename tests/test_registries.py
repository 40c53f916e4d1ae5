"""Tasks and data kinds are registries the domain packages plug into (skiplab.sar adds
``reconstruct``, ``sar:PATH`` and ``synthetic:sar``), found lazily by the core."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skiplab.data import data_examples, data_kinds, parse_data_spec
from skiplab.train import Task, TrainConfig, get_task, list_tasks, register_task


def fresh(code: str) -> str:
    """stdout of ``code`` in a new interpreter (nothing of skiplab imported before)."""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_builtin_tasks_and_kinds_are_registered():
    assert {"classify", "segment", "reconstruct"} <= set(list_tasks())
    assert get_task("reconstruct").__module__ == "skiplab.sar.training.task"
    assert {"cifar10", "cifar100", "folder", "synthetic", "sar"} <= set(data_kinds())
    assert "sar:PATH" in data_examples("reconstruct")
    assert "synthetic:cells" in data_examples("segment")


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'denoise'; expected one of classify, segment"):
        get_task("denoise")
    with pytest.raises(ValueError, match="unknown task 'denoise'"):
        TrainConfig.from_dict({"task": "denoise"})


def test_register_task_adds_a_task_and_refuses_a_second_class_under_its_name():
    from skiplab.train.tasks import base

    @register_task("test-denoise")
    class Denoise(Task):
        pass

    try:
        assert get_task("test-denoise") is Denoise and Denoise.name == "test-denoise"
        assert TrainConfig.from_dict({"task": "test-denoise"}).task == "test-denoise"
        with pytest.raises(ValueError, match="already registered"):
            register_task("test-denoise")(type("Other", (Task,), {}))
    finally:
        base._TASKS.pop("test-denoise")


def test_unknown_data_kind_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown data kind 'radar'.*sar.*synthetic-sar"):
        parse_data_spec("radar:somewhere")


def test_the_core_loads_the_sar_plugin_only_when_asked():
    """``import skiplab`` and the core packages do not import skiplab.sar (nor analysis
    train/); a task or data kind they do not know loads it."""
    assert (
        fresh(
            "import sys, skiplab.analysis; "
            "train = any(m.startswith('skiplab.train') for m in sys.modules); "
            "import skiplab.data; from skiplab.train import get_task; "
            "before = 'skiplab.sar' in sys.modules; name = get_task('reconstruct').__name__; "
            "print(train, before, name, 'skiplab.sar' in sys.modules)"
        )
        == "False False ReconstructTask True"
    )
    assert (
        fresh("from skiplab.data import parse_data_spec; print(parse_data_spec('synthetic-sar-8,looks=2').task)")
        == "reconstruct"
    )
