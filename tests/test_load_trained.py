"""``skiplab.load_trained``: one road from a file to a model, for every kind of skiplab file;
the checkpoint schema's version (older files migrated, newer ones refused in one line); the
public API; the model registry that knows every family without a domain import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import skiplab
from skiplab import CheckpointVersionError, SkiplabError, create_model, load_trained
from skiplab.train import TrainConfig, fit, load_checkpoint, save_checkpoint, strip_training_state
from skiplab.trained import CHECKPOINT_VERSION, checkpoint_header

REPO = Path(__file__).resolve().parents[1]
COMMITTED = sorted((REPO / "docs" / "evidence" / "deploy-models").glob("*/checkpoints/last.pt"))
SAR_DEFAULT = REPO / "src" / "skiplab" / "sar" / "weights" / "sar_ae_default.pt"


def fresh(code: str) -> str:
    """stdout of ``code`` in a new interpreter (nothing of skiplab imported before)."""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, atol: float = 0.0) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=atol)


def save_model(net: torch.nn.Module, path: Path, **extra) -> Path:
    """A checkpoint as every skiplab writer makes it: the header, the config, the weights."""
    arch = net.skiplab_arch
    return save_checkpoint(
        {
            **checkpoint_header(net),
            "config": {"model": arch["name"], "model_kwargs": {}},
            "model": net.state_dict(),
            **extra,
        },
        path,
    )


# -- every kind of file ---------------------------------------------------------------------------
def test_classifier_from_training_full_and_stripped(tmp_path):
    result = fit(
        TrainConfig(
            data="synthetic:shapes-64,test=16",
            model="cifar_resnet",
            model_kwargs={"depth": 8},
            batch_size=16,
            steps=2,
            compile="off",
            progress=False,
            tensorboard=False,
            eval_batch_size=16,
            out=str(tmp_path / "run"),
        )
    )
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert state["written_version"] == CHECKPOINT_VERSION
    assert state["arch"]["name"] == "cifar_resnet" and state["arch"]["kwargs"]["in_chans"] == 3
    trained = load_trained(last)
    model, meta = trained  # unpacks like a tuple
    assert not model.training and meta.task == "classify" and meta.num_classes == 10
    assert meta.input_size[0] == 3 and meta.format_version == CHECKPOINT_VERSION
    assert meta.model_kwargs == {"depth": 8, "num_classes": 10, "in_chans": 3}
    same_outputs(model, result.model, torch.randn(2, 3, 32, 32), atol=1e-6)  # (channels_last)
    stripped = save_checkpoint(strip_training_state(torch.load(last, weights_only=True)), tmp_path / "stripped.pt")
    same_outputs(load_trained(stripped).model, model, torch.randn(2, 3, 32, 32))


def test_pruned_checkpoint_rebuilds_its_recorded_widths(tmp_path):
    pytest.importorskip("torch_pruning")
    from skiplab.deploy.prune import prune_to_macs
    from skiplab.models import model_structure

    net = create_model("cifar_resnet20", shortcut="B")
    prune_to_macs(net, torch.randn(1, 3, 32, 32), 2.0)
    path = save_model(net, tmp_path / "pruned.pt", format="skiplab.prune/1", structure=model_structure(net))
    model, meta = load_trained(path)
    assert meta.structure is not None
    same_outputs(model, net, torch.randn(2, 3, 32, 32))


def test_unet_with_its_recorded_channels_and_classes(tmp_path):
    net = create_model("unet_residual", num_classes=3, in_chans=2)
    model, meta = load_trained(save_model(net, tmp_path / "unet.pt", tile_size=48))
    assert meta.task == "segment" and meta.dynamic_hw and meta.input_size == (2, 48, 48)
    assert meta.num_classes == 3
    same_outputs(model, net, torch.randn(1, 2, 32, 32))


def test_sar_autoencoder_through_load_trained_and_load_autoencoder(tmp_path):
    from skiplab.sar import load_autoencoder, synthetic_sar_tiles

    kwargs = dict(latent_channels=8, widths=(8, 16, 16, 32))
    net = create_model("sar_ae_all", **kwargs)
    radiometry = synthetic_sar_tiles(2, tile=32, looks=2, seed=0).radiometry.to_dict()
    path = save_model(net, tmp_path / "ae.pt", radiometry=radiometry, tile_size=32, looks=2.0)
    model, meta = load_trained(path)
    assert meta.task == "reconstruct" and meta.radiometry == radiometry and meta.tile_size == 32
    x = torch.rand(1, 1, 32, 32)
    same_outputs(model, net, x)
    ae = load_autoencoder(path)
    assert ae.tile == 32 and ae.looks == 2.0
    same_outputs(ae.model, net, x)


def test_a_pt2_program_with_its_sidecar(tmp_path):
    from skiplab.deploy import load_source
    from skiplab.deploy.export import export_pt2

    source = load_source("cifar_resnet20")
    export_pt2(source, tmp_path / "r20.pt2")
    model, meta = load_trained(tmp_path / "r20.pt2")
    assert meta.model == "cifar_resnet20"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source.model(x), rtol=1e-4, atol=1e-5)


# -- the schema's versions ------------------------------------------------------------------------
@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.parent.name)
def test_committed_version_1_checkpoints_load(path):
    model, meta = load_trained(path)
    assert meta.format_version == 1  # written before format_version existed
    assert meta.model_kwargs["in_chans"] == 3 and meta.num_classes == 10  # from mean, classes
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()


def test_committed_sar_model_loads_with_its_card():
    from skiplab.sar import load_default_model

    model, meta = load_trained(SAR_DEFAULT)
    assert meta.task == "reconstruct" and meta.input_size == (1, 64, 64)
    card = json.loads(SAR_DEFAULT.with_suffix(".json").read_text())
    assert load_default_model().weights_sha256 == card["weights_sha256"]


def test_version_1_in_chans_comes_from_the_record_not_a_weight(tmp_path):
    """A one-channel classifier written before format_version: its per-channel mean says 1."""
    net = create_model("cifar_resnet20", in_chans=1, num_classes=4)
    path = save_checkpoint(
        {
            "format": "skiplab.train/1",
            "config": {"model": "cifar_resnet20"},
            "model": net.state_dict(),
            "mean": [0.5],
            "std": [0.2],
            "classes": list("abcd"),
        },
        tmp_path / "gray.pt",
    )
    model, meta = load_trained(path)
    assert meta.input_size[0] == 1 and meta.num_classes == 4
    same_outputs(model, net, torch.randn(2, 1, 32, 32))


def test_a_newer_version_is_refused_in_one_line(tmp_path, capsys):
    from skiplab.cli import main

    net = create_model("cifar_resnet20")
    path = save_checkpoint(
        {
            **checkpoint_header(net),
            "format_version": CHECKPOINT_VERSION + 1,
            "config": {"model": "cifar_resnet20"},
            "model": net.state_dict(),
        },
        tmp_path / "future.pt",
    )
    with pytest.raises(
        CheckpointVersionError,
        match=f"format version {CHECKPOINT_VERSION + 1}, written by a newer skiplab.*upgrade skiplab",
    ):
        load_trained(path)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("skiplab eval: error:") and "format version" in err and "\n" not in err


# -- errors, the API, the registry ---------------------------------------------------------------
def test_only_user_errors_are_one_liners(monkeypatch, capsys):
    from skiplab.cli import eval as eval_cmd, main

    def bug(args):
        raise TypeError("a bug inside skiplab")

    monkeypatch.setattr(eval_cmd, "run", bug)
    with pytest.raises(TypeError, match="a bug inside skiplab"):
        main(["eval", "x.pt"])

    def mistake(args):
        raise SkiplabError("a user's mistake")

    monkeypatch.setattr(eval_cmd, "run", mistake)
    assert main(["eval", "x.pt"]) == 2
    assert capsys.readouterr().err == "skiplab eval: error: a user's mistake\n"


def test_public_api_snapshot():
    assert skiplab.__all__ == [
        "CheckpointError",
        "CheckpointMismatchError",
        "CheckpointVersionError",
        "FitResult",
        "SkiplabError",
        "TrainConfig",
        "Trained",
        "TrainedMeta",
        "create_model",
        "evaluate_checkpoint",
        "fit",
        "list_models",
        "load_trained",
        "__version__",
    ]
    for name in skiplab.__all__:
        assert getattr(skiplab, name) is not None
    from skiplab.errors import CheckpointMismatchError

    assert issubclass(CheckpointMismatchError, (SkiplabError, ValueError))
    assert skiplab.CheckpointMismatchError is skiplab.train.CheckpointMismatchError


def test_list_models_is_the_same_whatever_was_imported_and_import_is_light():
    import skiplab.sar  # noqa: F401  (here: already imported or not, the list is the same)

    here = len(skiplab.list_models())
    assert here >= 77 and "sar_codec_all" in skiplab.list_models()
    out = fresh("import sys, skiplab; light = 'torch' not in sys.modules; print(len(skiplab.list_models()), light)")
    assert out == f"{here} True"
    assert (
        fresh("import skiplab; print(type(skiplab.create_model('sar_codec_all')).__name__)") == "QuantizedAutoencoder"
    )


def test_help_imports_no_torch():
    """``skiplab --help`` builds every subcommand's parser without importing torch (fast)."""
    assert (
        fresh(
            "import sys; from skiplab.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
        )
        == "[]"
    )
