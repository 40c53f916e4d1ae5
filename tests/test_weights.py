"""load_weights: files, checkpoints, prefixes, stem adaptation, classifier and mismatch errors."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import pytest
import torch

from skiplab.models import create_model
from skiplab.models.weights import adapt_input_conv, load_weights, read_state_dict

from reference_weights import fill_state_dict


@pytest.fixture(scope="module")
def resnet18_weights() -> dict[str, torch.Tensor]:
    """torchvision-named resnet18 weights (filled deterministically, 1000 classes)."""
    with torch.device("meta"):
        names = create_model("resnet18").state_dict()
    return fill_state_dict({k: torch.empty(v.shape, dtype=v.dtype) for k, v in names.items()})


def assert_loaded(model, weights, skip=()):
    own = model.state_dict()
    for key, value in weights.items():
        if not key.startswith(tuple(skip)):
            assert torch.equal(own[key], value.to(own[key].dtype)), key


def test_exported_from_skiplab_models():
    from skiplab.models import load_weights as exported

    assert exported is load_weights


def test_state_dict_strict(resnet18_weights):
    model = create_model("resnet18")
    report = load_weights(model, resnet18_weights)
    assert_loaded(model, resnet18_weights)
    assert len(report.loaded) == len(resnet18_weights)
    assert not (report.missing or report.unexpected or report.mismatched or report.adapted or report.dropped)


@pytest.mark.parametrize("wrap", ["file", "state_dict", "model", "module_prefix", "compiled_prefix"])
def test_files_checkpoints_and_prefixes(resnet18_weights, tmp_path, wrap):
    weights = resnet18_weights
    if wrap == "module_prefix":  # DataParallel / DDP
        weights = {"state_dict": OrderedDict((f"module.{k}", v) for k, v in weights.items()), "epoch": 3}
    elif wrap == "compiled_prefix":  # torch.compile's wrapper
        weights = {f"_orig_mod.{k}": v for k, v in weights.items()}
    elif wrap != "file":
        weights = {wrap: weights, "optimizer": {"lr": torch.tensor(0.1)}, "epoch": 7}
    path = tmp_path / "weights.pt"
    torch.save(weights, path)
    model = create_model("resnet18")
    load_weights(model, str(path) if wrap == "file" else path)
    assert_loaded(model, resnet18_weights)


def test_safetensors_file(resnet18_weights, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    path = tmp_path / "weights.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in resnet18_weights.items()}, str(path))
    model = create_model("resnet18")
    load_weights(model, path)
    assert_loaded(model, resnet18_weights)


def test_grey_model_sums_rgb_kernels_and_matches_rgb_model(resnet18_weights):
    rgb = create_model("resnet18").eval()
    grey = create_model("resnet18", in_chans=1).eval()
    load_weights(rgb, resnet18_weights)
    report = load_weights(grey, resnet18_weights)
    assert report.adapted == ["conv1.weight"]
    torch.testing.assert_close(grey.conv1.weight, resnet18_weights["conv1.weight"].sum(1, keepdim=True))
    image = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey(image), rgb(image.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


def test_six_channel_model_on_duplicated_rgb_matches_rgb_model(resnet18_weights):
    rgb = create_model("resnet18").eval()
    six = create_model("resnet18", in_chans=6).eval()
    load_weights(rgb, resnet18_weights)
    load_weights(six, resnet18_weights)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(six(torch.cat([image, image], 1)), rgb(image), rtol=1e-4, atol=1e-5)


def test_adapt_input_conv_repeats_cyclically_and_rescales():
    weight = torch.randn(8, 3, 7, 7)
    adapted = adapt_input_conv(weight, 4)
    torch.testing.assert_close(adapted, weight[:, [0, 1, 2, 0]] * 0.75)
    torch.testing.assert_close(adapt_input_conv(weight, 2), weight[:, :2] * 1.5)
    assert adapt_input_conv(weight, 3) is weight
    assert adapt_input_conv(weight.half(), 1).dtype == torch.float16
    with pytest.raises(ValueError, match="in_chans must be >= 1"):
        adapt_input_conv(weight, 0)


def test_other_classifier_size_is_a_clear_error(resnet18_weights):
    model = create_model("resnet18", num_classes=10)
    with pytest.raises(
        ValueError, match=r"1000 outputs but the model's has 10.*num_classes=1000.*drop_classifier=True"
    ):
        load_weights(model, resnet18_weights)


def test_drop_classifier_keeps_the_fresh_head(resnet18_weights):
    model = create_model("resnet18", num_classes=10)
    head = {k: v.clone() for k, v in model.fc.state_dict().items()}
    report = load_weights(model, resnet18_weights, drop_classifier=True)
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"]
    assert all(torch.equal(model.fc.state_dict()[k], v) for k, v in head.items())
    assert_loaded(model, resnet18_weights, skip=("fc.",))


def test_headless_model_and_feature_extractor_ignore_the_classifier(resnet18_weights):
    headless = create_model("resnet18", num_classes=0)
    assert sorted(load_weights(headless, resnet18_weights).dropped) == ["fc.bias", "fc.weight"]
    assert_loaded(headless, resnet18_weights, skip=("fc.",))
    extractor = create_model("resnet18", features_only=True)
    load_weights(extractor, resnet18_weights)
    assert_loaded(extractor.model, resnet18_weights, skip=("fc.",))


def test_missing_unexpected_and_mismatched_are_listed():
    with torch.device("meta"):
        se = create_model("seresnet50").state_dict()
        resnext = create_model("resnext50_32x4d").state_dict()
    plain_weights = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in se.items() if ".se." not in k}
    se_weights = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in se.items()}
    with pytest.raises(ValueError) as info:
        load_weights(create_model("seresnet50"), plain_weights)
    message = str(info.value)
    assert "missing from the weights (64)" in message and "layer1.0.se.fc1.weight" in message
    assert "... and 52 more" in message and "unexpected" not in message
    with pytest.raises(ValueError, match=r"unexpected in the weights \(64\): layer1\.0\.se\.fc1\.weight"):
        load_weights(create_model("resnet50"), se_weights)
    rx_weights = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in resnext.items()}
    with pytest.raises(
        ValueError,
        match=r"shape mismatch \(\d+\): layer1\.0\.conv1\.weight: "
        r"weights \[128, 64, 1, 1\] vs model \[64, 64, 1, 1\]",
    ):
        load_weights(create_model("resnet50"), rx_weights)


def test_non_strict_loads_what_fits_and_reports_the_rest(resnet18_weights):
    model = create_model("resnet18")
    weights = dict(resnet18_weights)
    del weights["layer4.1.bn2.weight"]
    weights["extra.weight"] = torch.ones(3)
    weights["layer1.0.conv1.weight"] = torch.ones(64, 64, 1, 1)
    before = model.state_dict()["layer4.1.bn2.weight"].clone()
    report = load_weights(model, weights, strict=False)
    assert report.missing == ["layer4.1.bn2.weight"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == ["layer1.0.conv1.weight: weights [64, 64, 1, 1] vs model [64, 64, 3, 3]"]
    assert torch.equal(model.layer4[1].bn2.weight, before)
    assert_loaded(model, {k: v for k, v in weights.items() if k in report.loaded})


def test_old_checkpoints_without_num_batches_tracked_load(resnet18_weights):
    weights = {k: v for k, v in resnet18_weights.items() if not k.endswith("num_batches_tracked")}
    model = create_model("resnet18")
    load_weights(model, weights)
    assert_loaded(model, weights)


def test_half_precision_weights_load_into_float_model(resnet18_weights):
    model = create_model("resnet18", in_chans=1)
    load_weights(model, {k: v.half() if v.is_floating_point() else v for k, v in resnet18_weights.items()})
    assert model.conv1.weight.dtype == torch.float32


class Opaque:  # a pickled object that weights_only=True refuses
    pass


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_weights(create_model("resnet18"), tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="state dict or a path"):
        load_weights(create_model("resnet18"), 42)
    with pytest.raises(ValueError, match=r"checkpoint holding one under 'state_dict'.*found the keys epoch, note"):
        read_state_dict({"epoch": 3, "note": "x"})
    path = tmp_path / "opaque.pt"
    with open(path, "wb") as fh:
        pickle.dump({"conv1.weight": Opaque()}, fh, protocol=2)
    with pytest.raises(
        ValueError,
        match=r"holds objects that are not tensors \(a pickled .*Opaque\): "
        r"not a weights file; .*never .*weights_only=False",
    ):
        load_weights(create_model("resnet18"), path)
