"""The contract every registered model keeps (DESIGN.md, "The contract users rely on").

Parametrised over ``skiplab.list_models()``, so a new family is covered as soon as it is
registered. Each model is built once per module (a module-scoped fixture; tests that
change a model work on a deep copy) and run once, in eval mode, on the smallest input it
accepts (batch 2) to check its shapes: output, ``feature_info`` (order, channels,
reductions), pre-logits, ``reset_classifier``, input errors, and once at its default
input size.

The numeric checks (forward/backward, state-dict round trip, gradient checkpointing,
``in_chans=1``, ``features_only``, drop-path rates) run once per *family*: models whose
module trees are the same up to depth and width (``cifar_resnet1202`` runs the code of
``cifar_resnet20``); the others say which model covered them. Giants (> 40M parameters)
are only checked for shapes, on the meta device.
"""

from __future__ import annotations

import copy
import io
import math
import re
import typing

import pytest
import torch
from torch import nn

from skiplab.blocks import DropPath
from skiplab.models import Classifier, FeatureExtractor, create_model, list_models, model_options
from skiplab.models.registry import get_model_fn
from skiplab.plugins import load_plugins

load_plugins()  # the domain packages' models (skiplab.sar: sar_codec_*) are covered too
MODELS = list_models()
GIANT = 40_000_000  # parameters: shapes on the meta device only
_FAMILIES: dict[frozenset, str] = {}  # module-tree signature -> the model checked numerically


def family_signature(model: nn.Module) -> frozenset:
    """The distinct lines of the module tree with every number removed: equal for two
    models that differ only in depth and widths, different for another block or layout."""
    return frozenset(re.sub(r"\d+(\.\d+)?", "#", line).strip() for line in repr(model).splitlines())


def small_size(model: nn.Module) -> int:
    """The smallest spatial size the model accepts: its total stride (image-to-image models:
    their encoder's), or for MLPs, which take one size only, the size they were built for."""
    size = max(getattr(model, "min_input_size", 1), getattr(model, "reduction", 1))
    return model.default_image_size if size <= 1 else size


def expected_output_shape(model: nn.Module, x: torch.Tensor) -> tuple:
    if isinstance(model, Classifier):
        return (x.shape[0], model.num_classes)
    return (x.shape[0], getattr(model, "out_chans", model.in_chans), *x.shape[2:])  # image to image


class Built:
    """One registered model, built, with the result of one eval-mode run cached."""

    def __init__(self, name: str) -> None:
        self.name = name
        torch.manual_seed(0)
        model = create_model(name)
        self.params = sum(p.numel() for p in model.parameters())
        self.giant = self.params > GIANT
        if self.giant:  # a forward of the real one would cost seconds: keep a meta copy
            del model
            with torch.device("meta"):
                model = create_model(name)
            self.checked_on = None
        else:
            self.checked_on = _FAMILIES.setdefault(family_signature(model), name)
        self.model = model.eval()
        self.device = "meta" if self.giant else "cpu"
        self.size = model.default_image_size if self.giant else small_size(model)
        self.x = torch.randn(2, model.in_chans, self.size, self.size, device=self.device)
        self._run()

    def _run(self) -> None:
        """One eval forward recording the feature_info modules' outputs in call order."""
        model, order, outputs = self.model, [], {}
        modules = dict(model.named_modules())

        def hook(name):
            def record(_module, _inputs, output):
                if name not in order:
                    order.append(name)
                outputs[name] = output

            return record

        handles = [modules[f["module"]].register_forward_hook(hook(f["module"])) for f in model.feature_info]
        try:
            with torch.no_grad():
                if isinstance(model, Classifier):
                    self.features = model.forward_features(self.x)
                    self.pre_logits = model.forward_head(self.features, pre_logits=True)
                    self.out = model.forward_head(self.features)
                else:
                    self.out = model(self.x)
        finally:
            for h in handles:
                h.remove()
        self.order, self.feature_maps = order, [outputs.get(f["module"]) for f in model.feature_info]

    @property
    def is_classifier(self) -> bool:
        return isinstance(self.model, Classifier)

    def copy(self) -> nn.Module:
        """A deep copy of the CPU model, or a skip saying why there is none to check."""
        if self.giant:
            pytest.skip(f"{self.name} has {self.params:,} parameters (> {GIANT:,}): shapes only")
        if self.checked_on != self.name:
            pytest.skip(f"{self.name} runs the code of {self.checked_on} (same module tree), checked there")
        return copy.deepcopy(self.model)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: small inputs gain nothing from more, and lose a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=MODELS)
def built(request) -> Built:
    cls = typing.get_type_hints(get_model_fn(request.param)).get("return")
    if getattr(cls, "image_model_contract", True) is False:
        # learned codecs (skiplab.sar.codec.hyperprior): forward returns x^ and the
        # likelihoods, as CompressAI's models do; tests/test_sar_hyperprior.py checks them
        pytest.skip(f"{request.param} is a learned codec, not an image model")
    return Built(request.param)


def channels(feature_map: torch.Tensor) -> int:
    """Channels of a feature map: dim 1 of images ``[B, C, H, W]`` and vectors ``[B, C]``,
    the last of a transformer's tokens ``[B, N, C]``."""
    return feature_map.shape[-1] if feature_map.dim() == 3 else feature_map.shape[1]


def small_batch(model: nn.Module, n: int = 2) -> torch.Tensor:
    size = small_size(model)
    return torch.randn(n, model.in_chans, size, size)


def first_trainable_layer(model: nn.Module) -> nn.Module:
    """``model.first_conv``, or the first trainable conv/linear when it is frozen (the fixed
    whitening of the fast CIFAR ResNet) or not named (image-to-image models)."""
    name = getattr(model, "first_conv", None)
    if name and model.get_submodule(name).weight.requires_grad:
        return model.get_submodule(name)
    return next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad)


# -- shapes: every model ------------------------------------------------------------------


def test_output_shape_and_default_input_size(built):
    model = built.model
    assert tuple(built.out.shape) == expected_output_shape(model, built.x)
    if not built.giant:
        assert torch.isfinite(built.out).all()
    c, h, w = model.default_input_size
    assert c == model.in_chans and h == w == model.default_image_size
    if built.checked_on == built.name and built.size != h:  # also at its design size (batch 1)
        x = torch.randn(1, c, h, w)
        with torch.no_grad():
            assert tuple(model(x).shape) == expected_output_shape(model, x)


def test_feature_info_matches_the_feature_maps_in_forward_order(built):
    info = built.model.feature_info
    assert info, f"{built.name} has no feature_info"
    assert built.order == [f["module"] for f in info], "feature_info must list its modules in forward order"
    reductions = [f["reduction"] for f in info]
    assert reductions == sorted(reductions)
    for f, out in zip(info, built.feature_maps):
        assert out.shape[0] == 2 and channels(out) == f["num_chs"], (f, tuple(out.shape))
        if out.dim() == 4:  # size / reduction, give or take the rounding of unpadded layers
            low, high = (built.size - 1) // f["reduction"], math.ceil(built.size / f["reduction"])
            assert all(low <= s <= high for s in out.shape[2:]), (f, tuple(out.shape), built.size)


def test_pre_logits_and_reset_classifier(built):
    if not built.is_classifier:
        pytest.skip(f"{built.name} is not a classifier")
    model = built.model
    assert tuple(built.pre_logits.shape) == (2, model.num_features)
    head, num_classes = model.get_classifier(), model.num_classes
    try:
        with torch.device(built.device), torch.no_grad():
            model.reset_classifier(5)
            assert model.num_classes == 5 and tuple(model.forward_head(built.features).shape) == (2, 5)
            model.reset_classifier(0)
            assert tuple(model.forward_head(built.features).shape) == (2, model.num_features)
    finally:
        setattr(model, model.classifier_name, head)
        model.num_classes = num_classes


def test_wrong_channels_and_too_small_inputs_say_what_was_expected(built):
    model, c, size = built.model, built.model.in_chans, built.size
    x = torch.zeros(2, c + 1, size, size, device=built.device)
    with pytest.raises(ValueError) as err:
        model(x)
    assert str(c) in str(err.value) and str(tuple(x.shape)) in str(err.value), str(err.value)
    smallest = getattr(model, "min_input_size", 1)
    if smallest > 1:
        with pytest.raises(ValueError, match=f"{smallest}x{smallest}"):
            model(torch.zeros(2, c, smallest - 1, smallest - 1, device=built.device))


def test_errors_suggest_close_names(built):
    with pytest.raises(ValueError, match=f"did you mean.*'{built.name}'"):
        create_model(built.name + "x")
    with pytest.raises(TypeError, match="did you mean.*'in_chans'"):
        create_model(built.name, in_chan=1)


# -- numbers: once per family --------------------------------------------------------------


def train_step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and parameter gradients of one training step (seeded: shake-shake and
    drop-path draw the same numbers every time)."""
    torch.manual_seed(1)
    out = model(x)
    out.square().mean().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_forward_backward_reaches_the_first_layer(built):
    model = built.copy().train()
    x = small_batch(model)
    out, grads = train_step(model, x)
    assert tuple(out.shape) == expected_output_shape(model, x) and torch.isfinite(out).all()
    auxiliary = getattr(model, "auxiliary_parameter_names", set)()  # trained by a rate term only
    for name, p in model.named_parameters():
        if p.requires_grad and name not in auxiliary:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    assert first_trainable_layer(model).weight.grad.abs().sum() > 0, "no gradient reaches the first layer"
    built.reference_step = (x, out, grads)  # the reference of the gradient-checkpointing test


def test_state_dict_round_trip_gives_identical_outputs(built):
    model = built.copy()
    with torch.no_grad():  # BatchNorm statistics away from their init, as after training
        for b in model.buffers():
            if b.is_floating_point():
                b.add_(torch.rand_like(b))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    fresh = copy.deepcopy(built.model)
    with torch.no_grad():  # nothing of the fresh model may survive the load
        for t in list(fresh.parameters()) + [b for b in fresh.buffers() if b.is_floating_point()]:
            t.add_(torch.rand_like(t))
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = small_batch(model)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), fresh.eval()(x))


def test_gradient_checkpointing_gives_the_same_outputs_and_gradients(built):
    ckpt = built.copy().train()
    ckpt.set_grad_checkpointing(True)
    if getattr(built, "reference_step", None) is None:
        x = small_batch(ckpt)
        out_a, grads_a = train_step(copy.deepcopy(built.model).train(), x)
    else:
        x, out_a, grads_a = built.reference_step
    out_b, grads_b = train_step(ckpt, x)
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)
    for name, g in grads_a.items():
        torch.testing.assert_close(g, grads_b[name], rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_in_chans_1_and_features_only(built):
    built.copy()  # skips the giants and the covered family members
    model = create_model(built.name, in_chans=1).eval()
    assert model.in_chans == 1 and model.default_input_size[0] == 1
    x = small_batch(model)
    with torch.no_grad():
        assert tuple(model(x).shape) == expected_output_shape(model, x)
    extractor = FeatureExtractor(copy.deepcopy(built.model)).eval()
    with torch.no_grad():
        maps = extractor(small_batch(built.model))
    assert [channels(m) for m in maps] == [f["num_chs"] for f in built.model.feature_info]
    assert [tuple(m.shape) for m in maps] == [tuple(m.shape) for m in built.feature_maps]


def test_create_model_features_only_returns_the_extractor():
    extractor = create_model("resnet18", features_only=True)
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.channels() == [64, 64, 128, 256, 512] and extractor.reductions() == [2, 4, 8, 16, 32]
    maps = extractor(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [
        (1, 64, 32, 32),
        (1, 64, 16, 16),
        (1, 128, 8, 8),
        (1, 256, 4, 4),
        (1, 512, 2, 2),
    ]


def test_drop_path_rate_decays_linearly_to_the_given_rate(built):
    built.copy()
    if "drop_path_rate" not in model_options(built.name):
        pytest.skip(f"{built.name} has no drop_path_rate option")
    try:
        model = create_model(built.name, drop_path_rate=0.2)
    except ValueError as err:  # a family may take the keyword but have no residual branch
        assert "drop_path" in str(err)
        pytest.skip(f"{built.name} rejects drop_path_rate > 0: {err}")
    rates = [m.p for m in model.modules() if isinstance(m, DropPath)]
    assert rates, f"{built.name}: drop_path_rate=0.2 created no DropPath"
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.2)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    model = create_model("cifar_resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    try:
        compiled = torch.compile(model)
        with torch.no_grad():
            got = compiled(x)
    except Exception as err:  # pragma: no cover - no C++ compiler on this machine
        pytest.skip(f"torch.compile unavailable: {type(err).__name__}: {err}")
    with torch.no_grad():
        torch.testing.assert_close(got, model(x), rtol=1e-4, atol=1e-5)
