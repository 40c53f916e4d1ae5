"""--help texts say what the code does: the defaults they name are the defaults the code uses."""

from __future__ import annotations

import re

import pytest

from skiplab.cli import main


def help_text(capsys, command: str) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_study_eval_images_help_names_the_real_defaults(capsys):
    from skiplab.studies.config import StudyConfig

    text = help_text(capsys, "study")
    entry = re.search(r"--eval-images N (.*?)--precision", text).group(1)
    synthetic = StudyConfig.create().eval_images
    real = StudyConfig.create(data="cifar10:somewhere").eval_images
    quick = StudyConfig.create(quick=True).eval_images
    assert f"default {synthetic} on synthetic data" in entry
    assert f"{real} on real data" in entry and f"{quick} with --quick" in entry


def test_quantize_help_speaks_of_a_signed_change(capsys):
    text = help_text(capsys, "quantize")
    assert "int8 - fp32" in text and "drop" not in text.lower()
