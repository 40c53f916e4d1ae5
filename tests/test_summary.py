"""skiplab.summary and the `skiplab summary` / `skiplab models` commands."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from skiplab.cli import main
from skiplab.models import create_model, is_model
from skiplab.summary import ModelSummary, summarize


def test_hand_computed_macs_and_saved_bytes():
    # conv 3->8, 3x3 on 16x16, batch 2: 2*8*16*16 outputs x 3*3*3 MACs each; autograd
    # keeps the conv's input (2*3*16*16 floats) and the ReLU's output (2*8*16*16 floats).
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    s = summarize(model, input_size=(3, 16, 16), batch=2)
    assert s.macs == 2 * 8 * 16 * 16 * 27 and s.flops == 2 * s.macs
    assert s.activation_bytes == 4 * (2 * 3 * 16 * 16 + 2 * 8 * 16 * 16)
    assert s.total_params == 8 * 27 + 8
    assert [r.output_shape for r in s.rows] == [[2, 3, 16, 16], [2, 8, 16, 16]]


def test_inplace_ops_share_storage_and_params_are_not_activations():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
    s = summarize(model, input_size=(3, 8, 8), batch=2)
    # conv input + BN input + ReLU output (in place over BN's output); BN's per-channel
    # saved mean and inverse std are 8 floats each. Weights and running statistics are not counted.
    assert s.activation_bytes == 4 * (2 * 3 * 64 + 2 * 8 * 64 + 2 * 8 * 64 + 8 + 8)


@pytest.mark.slow  # one ResNet-50 forward at 224x224, twice
def test_resnet50_textbook_table():
    s = summarize("resnet50")
    assert isinstance(s, ModelSummary)
    assert s.total_params == s.trainable_params == 25_557_032
    assert abs(s.macs - 4.09e9) < 0.01e9  # 4.09 GMACs, the torchvision / fvcore figure (He 2015 Table 1 prints 3.8e9)
    names = [r.name for r in s.rows]
    assert names == ["input", "stem", "layer1", "layer2", "layer3", "layer4", "pool", "logits"]
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["stem"] == [1, 64, 112, 112] and shapes["layer1"] == [1, 256, 56, 56]
    assert shapes["layer4"] == [1, 2048, 7, 7] and shapes["pool"] == [1, 2048]
    assert shapes["logits"] == [1, 1000]
    assert sum(r.params for r in s.rows) == s.total_params
    assert sum(r.macs for r in s.rows) == s.macs
    params = {r.name: r.params for r in s.rows}
    assert params["stem"] == 64 * 3 * 49 + 2 * 64 and params["logits"] == 2048 * 1000 + 1000
    assert {r.name: r.macs for r in s.rows}["stem"] == 64 * 112 * 112 * 3 * 49
    assert 60 * 2**20 < s.activation_bytes < 120 * 2**20
    assert sum(r.activation_bytes for r in s.rows) == s.activation_bytes
    assert s.published == {"count": 25_557_032, "tolerance": 0, "source": "torchvision"}
    text = s.to_text()
    assert "25,557,032" in text and "4.09 G" in text and "layer3" in text


def test_cifar_resnet56_figures():
    if not is_model("cifar_resnet56"):
        pytest.fail("cifar_resnet56 is not registered")
    s = summarize("cifar_resnet56")
    assert s.input_size == [3, 32, 32]
    assert abs(s.total_params - 0.85e6) <= 0.01 * 0.85e6
    assert abs(s.macs - 0.125e9) < 0.01e9  # ~0.13 GMACs
    assert s.rows[-1].output_shape == [1, 10]


def test_activation_memory_scales_with_batch_and_model_is_untouched():
    model = create_model("resnet18", num_classes=10)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    two = summarize(model, input_size=(3, 32, 32), batch=2)
    six = summarize(model, input_size=(3, 32, 32), batch=6)
    assert 2.9 < six.activation_bytes / two.activation_bytes <= 3.0
    assert six.macs == 3 * two.macs and two.activation_mode == "train"
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():  # BatchNorm running statistics restored
        assert torch.equal(v, before[k]), k


def test_batchnorm_single_value_falls_back_to_eval_with_a_note():
    s = summarize("resnet18", input_size=(3, 32, 32), batch=1)  # layer4 is 1x1 at batch 1
    assert s.activation_mode == "eval" and s.notes and s.activation_bytes > 0


def test_options_and_json_round_trip():
    s = summarize("resnet18", input_size=(1, 64, 64), num_classes=7, in_chans=1)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["rows"][-1]["output_shape"] == [1, 7] and d["input_size"] == [1, 64, 64]
    assert d["published"] is None  # the published count describes the default options only
    assert d["total_params"] == 11_689_512 - 9408 + 3136 - 513_000 + 512 * 7 + 7
    # the channels of input_size build the model (as `skiplab summary --input-size 1 64 64`)
    assert summarize("resnet18", input_size=(1, 64, 64), num_classes=7).total_params == d["total_params"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_size=(3, 16, 16)), "at least 32x32"),
        (dict(input_size=(1, 64, 64), in_chans=3), "in_chans=3"),
        (dict(input_size=(3, 64)), "three positive integers"),
        (dict(batch=0), "batch must be >= 1"),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        summarize("resnet18", **kwargs)


def test_unknown_model_suggests_names():
    with pytest.raises(ValueError, match="did you mean 'resnet50'"):
        summarize("resnt50")


def test_cli_summary_text_json_and_errors(capsys):
    assert main(["summary", "resnet18", "--input-size", "3", "64", "64", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "11,689,512" in out and "[2, 512, 2, 2]" in out
    assert (
        main(
            ["summary", "resnet18", "--input-size", "1", "64", "64", "--in-chans", "1", "--num-classes", "3", "--json"]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    assert d["rows"][-1]["output_shape"] == [1, 3]
    assert main(["summary", "resnt18"]) == 2
    assert "did you mean 'resnet18'" in capsys.readouterr().err
    assert main(["summary", "resnet18", "--input-size", "3", "8", "8"]) == 2
    assert "at least 32x32" in capsys.readouterr().err


def test_cli_help_has_an_example(capsys):
    for command in ("summary", "models"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example" in capsys.readouterr().out


def test_cli_models_table_and_markdown(capsys):
    assert main(["models", "resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,689,512" in out and "ok" in out and "resnet34" not in out
    assert main(["models", "resnet50", "--markdown"]) == 0
    md = capsys.readouterr().out
    assert "| `resnet50` | 25,557,032 | 25,557,032 ± 0 | +0 | ok | torchvision |" in md
    assert main(["models", "nothing_like_this*"]) == 2
    assert "no registered model matches" in capsys.readouterr().err


@pytest.mark.slow
def test_docs_models_md_is_current(capsys):
    """docs/models.md is `skiplab models --markdown`: regenerate it when a model changes."""
    from pathlib import Path

    assert main(["models", "--markdown"]) == 0
    current = capsys.readouterr().out
    committed = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    assert current == committed, "docs/models.md is stale: run `skiplab models --markdown > docs/models.md`"
