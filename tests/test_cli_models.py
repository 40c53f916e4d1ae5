"""``skiplab models``: the table is counted once and read back from the cache afterwards (a
repeat answers without building a model), with the same rows."""

from __future__ import annotations

import pytest

from skiplab.cli import main


def test_models_reads_its_counts_back_from_the_cache(tmp_path, monkeypatch, capsys):
    import skiplab.cli.models as models_cli
    monkeypatch.setenv("SKIPLAB_CACHE", str(tmp_path))
    assert main(["models", "cifar_resnet2*"]) == 0
    first = capsys.readouterr().out
    assert "cifar_resnet20" in first and "269,722" in first and list((tmp_path / "models").glob("*.json"))

    def no_counting(name):
        raise AssertionError(f"counted {name} again")
    monkeypatch.setattr(models_cli, "counted", no_counting)
    assert main(["models", "cifar_resnet2*"]) == 0
    assert capsys.readouterr().out == first
    with pytest.raises(AssertionError, match="counted cifar_resnet32"):   # not cached yet
        main(["models", "cifar_resnet32"])
