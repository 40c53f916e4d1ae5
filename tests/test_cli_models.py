"""``skiplab models``: skiplab's own rows come from the generated table, without importing torch
(tests/test_param_counts.py checks the table against the models built now); a third-party
plugin's model, absent from the table, is counted when listed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from torch import nn

from skiplab.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"


def test_models_lists_the_table_without_importing_torch():
    script = (
        "import sys; from skiplab.cli import main; code = main(['models', 'cifar_resnet2*']); "
        "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(code)"
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["model", "params", "published", "check", "source"]
    assert lines[1].split()[:4] == ["cifar_resnet20", "269,722", "270,000", "ok"]
    assert lines[-1] == "no torch"


def test_a_plugin_model_missing_from_the_table_is_counted(monkeypatch, capsys):
    import importlib.metadata

    from skiplab.models import registry

    def plugin_tiny_net() -> nn.Linear:
        return nn.Linear(3, 2)

    monkeypatch.setitem(registry._MODELS, "plugin_tiny_net", plugin_tiny_net)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: ["a third-party plugin"])
    assert main(["models", "plugin_tiny*"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["plugin_tiny_net", "8", "-"]
    assert main(["models", "cifar_resnet20"]) == 0  # the table's rows still answer
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["cifar_resnet20", "269,722"]
