"""Residual SAR autoencoders: shapes, the ablation variants' parameters, compression figures,
output range, errors, features_only, checkpointing and the summary line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skiplab.blocks.attention import CBAM
from skiplab.models import FeatureExtractor, create_model
from skiplab.models.autoencoder import VARIANTS, ResidualAutoencoder
from skiplab.summary import summarize

NAMES = ["sar_ae_plain", "sar_ae_bottleneck", "sar_ae_all", "sar_ae_bottleneck_cbam"]
NARROW = (8, 16, 32, 64)  # same layout as the default (64, 128, 256, 512), fast to run


def params(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def plain_count(widths: tuple[int, ...], latent: int) -> int:
    """Parameters of the plain autoencoder, counted layer by layer by hand (BN: 2 per channel)."""

    def block(cin: int, cout: int, first_kernel: int) -> int:  # conv-BN-ReLU-conv3x3-BN
        return cin * cout * first_kernel + 2 * cout + cout * cout * 9 + 2 * cout

    total = 1 * widths[0] * 9 + 2 * widths[0]  # stem
    prev = widths[0]
    for w in widths:  # down block + level block
        total += block(prev, w, 9) + block(w, w, 9)
        prev = w
    total += widths[-1] * latent * 9 + latent  # to_latent (bias)
    total += latent * widths[-1] * 9 + 2 * widths[-1]  # from_latent
    for i in reversed(range(len(widths))):  # level block + 4x4 up block
        total += block(widths[i], widths[i], 9) + block(widths[i], widths[max(i - 1, 0)], 16)
    return total + widths[0] * 9 + 1  # head (bias)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", NAMES)
def test_256_tile_to_16x16_latent_and_back(name):
    model = create_model(name, latent_channels=16, widths=NARROW)
    x = torch.rand(2, 1, 256, 256)
    z = model.encode(x)
    assert z.shape == (2, 16, 16, 16)
    assert model.decode(z).shape == x.shape
    assert model(x).shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_default_widths_on_small_tiles(name):
    model = create_model(name, latent_channels=8).eval()
    with torch.no_grad():
        z = model.encode(torch.rand(1, 1, 64, 64))
        assert z.shape == (1, 8, 4, 4)
        assert model.decode(z).shape == (1, 1, 64, 64)


def test_non_square_tiles_and_three_levels():
    model = ResidualAutoencoder(latent_channels=4, widths=(8, 16, 32), in_chans=2)
    x = torch.rand(2, 2, 48, 80)
    assert model.encode(x).shape == (2, 4, 6, 10)
    assert model(x).shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_input(name):
    model = create_model(name, latent_channels=4, widths=NARROW)
    x = torch.rand(2, 1, 32, 32, requires_grad=True)
    (model(x) - x.detach()).pow(2).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------- the ablation family
def test_variants_differ_only_where_stated():
    models = {v: ResidualAutoencoder(latent_channels=16, variant=v) for v in VARIANTS}
    plain, bottleneck, every, cbam = (params(models[v]) for v in VARIANTS)
    # identity shortcuts at the 16x16 level: plain and bottleneck have the same parameters
    assert bottleneck == plain
    # "all" adds the projection shortcuts of the down and up blocks, nothing else
    extra = set(every) - set(plain)
    resampling = {"enc": "0", "dec": "1"}  # the down block starts a level, the up block ends it
    assert extra and all(".downsample." in name and name.split(".")[1] == resampling[name[:3]] for name in extra)
    assert {k: every[k] for k in plain} == plain
    # "bottleneck_cbam" adds CBAM on the two 16x16 residual branches, nothing else
    extra = set(cbam) - set(plain)
    assert {name.split(".se.")[0] for name in extra} == {"enc4.1", "dec4.0"}
    assert {k: cbam[k] for k in plain} == plain
    assert count(models["bottleneck_cbam"]) - count(models["bottleneck"]) == 2 * count(CBAM(512))


def test_which_blocks_are_residual():
    def residual(model):
        return {name for name, m in model.named_modules() if getattr(m, "has_shortcut", False)}

    assert residual(ResidualAutoencoder(variant="plain")) == set()
    assert residual(ResidualAutoencoder(variant="bottleneck")) == {"enc4.1", "dec4.0"}
    assert len(residual(ResidualAutoencoder(variant="all"))) == 16


@pytest.mark.parametrize("latent, plain, every", [(16, 21_044_753, 21_928_337), (32, 21_192_225, 22_075_809)])
def test_parameter_counts(latent, plain, every):
    assert plain_count((64, 128, 256, 512), latent) == plain
    projections = sum(cin * cout + 2 * cout for cin, cout in ((64, 64), (64, 128), (128, 256), (256, 512)))
    ups = ((512, 256), (256, 128), (128, 64), (64, 64))
    projections += sum(4 * cin * cout + 2 * cout for cin, cout in ups)  # 2x2/2 transposed convs
    assert every - plain == projections == 883_584
    assert count(create_model("sar_ae_plain", latent_channels=latent)) == plain
    assert count(create_model("sar_ae_bottleneck", latent_channels=latent)) == plain
    assert count(create_model("sar_ae_all", latent_channels=latent)) == every
    assert count(create_model("sar_ae", latent_channels=latent)) == every  # the default variant


def test_norm_options():
    none = ResidualAutoencoder(widths=NARROW, norm="none")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in none.modules())
    group = ResidualAutoencoder(widths=NARROW, norm="group")
    assert any(isinstance(m, nn.GroupNorm) for m in group.modules())
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in ResidualAutoencoder(widths=NARROW).modules())
    for model in (none, group):
        assert model(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="norm must be one of"):
        ResidualAutoencoder(norm="instance")


def test_eval_output_of_a_tile_does_not_depend_on_its_batch():
    """BatchNorm at inference is a fixed affine map: each tile keeps its absolute level."""
    model = ResidualAutoencoder(latent_channels=4, widths=NARROW).eval()
    x = torch.rand(3, 1, 32, 32)
    x[1] += 0.5  # a brighter tile in the same batch
    with torch.no_grad():
        assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-6)
        assert not torch.allclose(model.encode(x[:1]), model.encode(x[:1] + 0.2))


# --------------------------------------------------------------------------- compression figures
@pytest.mark.parametrize("latent", [8, 16, 32, 64])
def test_compression_ratio_is_256_over_c(latent):
    model = create_model("sar_ae_all", latent_channels=latent, widths=NARROW)
    assert model.compression_ratio(256) == 256 / latent
    assert model.compression_ratio((1, 512, 256)) == 256 / latent
    assert model.bits_per_pixel((256, 256)) == 16 * 16 * latent * 32 / 256**2 == latent / 8
    assert model.bits_per_pixel(256, latent_bits=8) == latent / 32
    assert model.compression_ratio(256, latent_bits=8) == 4 * 256 / latent
    assert model.latent_shape(256) == (latent, 16, 16)


def test_compression_refuses_bad_sizes():
    model = create_model("sar_ae_all", widths=NARROW)
    with pytest.raises(ValueError, match="multiples of 16"):
        model.compression_ratio(250)
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        model.compression_ratio((3, 256, 256))


def test_summary_reports_compression():
    summary = summarize("sar_ae_all", input_size=(1, 64, 64), latent_channels=16, widths=NARROW)
    assert summary.compression == dict(ratio=16.0, bits_per_pixel=2.0)
    assert "compression:       16:1" in summary.to_text() and "2 bits per pixel" in summary.to_text()
    assert summarize(nn.Conv2d(1, 2, 3), input_size=(1, 8, 8)).compression is None


# --------------------------------------------------------------------------- output range
def test_output_modes():
    x = torch.rand(2, 1, 32, 32)
    for output in ("clamp", "sigmoid", "linear"):
        model = ResidualAutoencoder(latent_channels=4, widths=NARROW, output=output)
        nn.init.constant_(model.head.bias, 3.0)  # push the raw output above 1
        y = model(x)
        if output == "linear":
            assert y.max() > 1
        else:
            assert 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize("output", ["clamp", "sigmoid", "linear"])
def test_a_fresh_model_outputs_mid_range_not_saturated(output):
    # He init of the head gave an output spread of ~4: every pixel clamped to 0 or 1
    torch.manual_seed(0)
    model = ResidualAutoencoder(latent_channels=4, widths=NARROW, output=output).train()
    y = model(torch.rand(4, 1, 32, 32))
    assert abs(float(y.mean()) - 0.5) < 0.05
    assert 0.001 < float(y.std()) < 0.2
    assert not ((y == 0) | (y == 1)).any()


def test_clamp_passes_gradients_outside_the_range():
    model = ResidualAutoencoder(latent_channels=4, widths=NARROW, output="clamp")
    nn.init.zeros_(model.head.weight)
    nn.init.constant_(model.head.bias, 3.0)  # raw output 3 everywhere
    y = model(torch.rand(1, 1, 32, 32))
    assert torch.equal(y, torch.ones_like(y))
    (y - 0.5).pow(2).mean().backward()
    assert model.head.bias.grad.item() > 0  # still told to come down


# --------------------------------------------------------------------------- errors
def test_bad_inputs_are_explained():
    model = create_model("sar_ae_all", widths=NARROW)
    with pytest.raises(ValueError, match="multiples of 16.*got 250x256"):
        model(torch.rand(1, 1, 250, 256))
    with pytest.raises(ValueError, match="in_chans=1"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.rand(64, 64))
    with pytest.raises(ValueError, match=r"latent \[B, 32, h, w\]"):
        model.decode(torch.rand(1, 16, 4, 4))


def test_bad_options_are_explained():
    with pytest.raises(ValueError, match="variant must be one of"):
        ResidualAutoencoder(variant="middle")
    with pytest.raises(ValueError, match="bottleneck_cbam"):
        create_model("sar_ae_bottleneck_cbam", attn_layer="se")
    with pytest.raises(ValueError, match="'plain' has no residual branch"):
        create_model("sar_ae_plain", attn_layer="se")
    with pytest.raises(ValueError, match="use sar_ae with variant='all'"):
        create_model("sar_ae_plain", variant="all")
    with pytest.raises(ValueError, match="output must be one of"):
        ResidualAutoencoder(output="tanh")
    with pytest.raises(ValueError, match="latent_channels"):
        ResidualAutoencoder(latent_channels=0)
    with pytest.raises(TypeError, match="num_classes"):
        create_model("sar_ae_all", num_classes=10)


def test_attention_and_drop_path_go_on_residual_branches_only():
    model = ResidualAutoencoder(widths=NARROW, variant="bottleneck", attn_layer="se", drop_path_rate=0.2)
    with_se = {
        name.rsplit(".se", 1)[0]
        for name, m in model.named_modules()
        if name.endswith(".se") and not isinstance(m, nn.Identity)
    }
    assert with_se == {"enc4.1", "dec4.0"}
    rates = {name: m.p for name, m in model.named_modules() if type(m).__name__ == "DropPath"}
    assert rates == {"enc4.1.drop_path": pytest.approx(0.1), "dec4.0.drop_path": pytest.approx(0.2)}
    every = ResidualAutoencoder(widths=NARROW, drop_path_rate=0.2)
    rates = [m.p for m in every.modules() if type(m).__name__ == "DropPath"]
    assert rates == pytest.approx([0.2 * (i + 1) / 16 for i in range(16)])  # along the forward path


# --------------------------------------------------------------------------- conventions
def test_features_only_gives_the_encoder_levels():
    extractor = create_model("sar_ae_all", features_only=True, latent_channels=8, widths=NARROW)
    assert isinstance(extractor, FeatureExtractor)
    maps = extractor(torch.rand(2, 1, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4), (8, 4, 4)]
    assert extractor.reductions() == [2, 4, 8, 16, 16]


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(1)
    reference = ResidualAutoencoder(latent_channels=4, widths=NARROW, zero_init_residual=False)
    checkpointed = ResidualAutoencoder(latent_channels=4, widths=NARROW, zero_init_residual=False)
    checkpointed.load_state_dict(reference.state_dict())
    checkpointed.set_grad_checkpointing(True)
    x = torch.rand(2, 1, 32, 32)
    for model in (reference, checkpointed):
        model(x).square().mean().backward()
    for (name, a), b in zip(reference.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4), name


def test_default_input_size_and_repr():
    model = create_model("sar_ae_bottleneck", widths=NARROW)
    assert model.default_input_size == (1, 256, 256)
    assert "variant='bottleneck'" in repr(model)
