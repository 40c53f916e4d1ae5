"""U-Nets (plain, residual, ResNet encoder), the synthetic cells task, Dice+CE loss, Dice/IoU."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from skiplab.data import SegmentationDataset, cells_splits, generate_cells
from skiplab.data.segmentation import instance_boundaries
from skiplab.models import FeatureExtractor, create_model
from skiplab.models.unet import ResNetUNet, UNet, crop_box, pad_to_multiple
from skiplab.train.seg_losses import DiceCELoss, SegmentationScores, confusion_counts, dice_score, iou_score, soft_dice


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def params(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def onehot_logits(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return nn.functional.one_hot(labels, num_classes).permute(0, 3, 1, 2).float() * 20


# --------------------------------------------------------------------------- U-Net shapes
ALL_UNETS = [
    ("unet", dict(base_width=8)),
    ("unet_residual", dict(base_width=8)),
    ("unet_resnet18", {}),
    ("unet_resnet34", {}),
]


@pytest.mark.parametrize("name, kwargs", ALL_UNETS)
@pytest.mark.parametrize("size", [(64, 64), (37, 53)])
def test_output_has_the_input_size(name, kwargs, size):
    model = create_model(name, num_classes=3, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize("pad_mode", ["reflect", "replicate", "zeros"])
def test_odd_sizes_and_tiny_inputs_are_padded_not_rejected(pad_mode):
    model = UNet(num_classes=2, in_chans=3, base_width=4, depth=3, pad_mode=pad_mode).eval()
    for size in [(37, 53), (5, 3), (1, 1), (17, 16)]:
        assert model(torch.randn(1, 3, *size)).shape == (1, 2, *size)


def test_pad_to_multiple_and_crop_box_are_inverse():
    x = torch.arange(37 * 53, dtype=torch.float32).view(1, 1, 37, 53)
    padded, box = pad_to_multiple(x, 16, "reflect")
    assert padded.shape == (1, 1, 48, 64) and box == (5, 5, 37, 53)
    assert torch.equal(crop_box(padded, box), x)
    assert torch.equal(padded[..., 5, 4], x[..., 0, 1])  # reflected, not repeated
    same, box = pad_to_multiple(torch.zeros(1, 1, 32, 16), 16)
    assert same.shape == (1, 1, 32, 16) and box == (0, 0, 32, 16)
    tiny, _ = pad_to_multiple(torch.ones(1, 1, 2, 2), 16, "reflect")  # too small to reflect
    assert torch.equal(tiny, torch.ones(1, 1, 16, 16))


def test_padding_keeps_the_prediction_of_a_divisible_input():
    """A 32x32 input needs no padding: the model is just the network on it."""
    model = UNet(num_classes=2, base_width=4, depth=2).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(
            model(x),
            model.head(
                model.run_stage(
                    model.dec1,
                    model.run_stage(model.dec2, model.enc3(model.enc2(model.enc1(x))), model.enc2(model.enc1(x))),
                    model.enc1(x),
                )
            ),
        )


@pytest.mark.parametrize("name, kwargs", ALL_UNETS[:3])
def test_gradients_reach_the_input(name, kwargs):
    model = create_model(name, **kwargs)
    x = torch.randn(2, 1, 40, 40, requires_grad=True)
    loss = DiceCELoss()(model(x), torch.randint(0, 2, (2, 40, 40)))
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------- U-Net parameters
def test_unet_parameter_count_matches_the_standard_pytorch_unet():
    """31,037,698 for 3 input channels and 2 classes: milesial/Pytorch-UNet (bilinear=False),
    the usual PyTorch U-Net with BN and padded convs."""
    assert count(create_model("unet", in_chans=3, num_classes=2)) == 31_037_698
    # 1 input channel: 2 x 64 x 9 weights fewer in the first conv
    assert count(create_model("unet")) == 31_037_698 - 2 * 64 * 9


def test_plain_and_residual_unet_differ_only_by_projection_shortcuts():
    plain, residual = params(create_model("unet")), params(create_model("unet_residual"))
    extra = set(residual) - set(plain)
    assert set(plain) <= set(residual) and all(".downsample." in name for name in extra)
    assert {k: residual[k] for k in plain} == plain
    # each of the 9 double convs changes width (1->64, ..., 512->1024, then 1024->512, ...)
    assert len({name.split(".downsample.")[0] for name in extra}) == 9


def test_depth_and_width_options():
    model = UNet(num_classes=4, depth=2, base_width=16)
    assert [f["num_chs"] for f in model.feature_info] == [16, 32, 64]
    assert [f["reduction"] for f in model.feature_info] == [1, 2, 4]
    assert model.reduction == 4 and model.out_chans == 4
    assert model(torch.randn(1, 1, 10, 10)).shape == (1, 4, 10, 10)
    bilinear = UNet(base_width=8, up_mode="bilinear")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in bilinear.modules())
    assert bilinear(torch.randn(1, 1, 20, 20)).shape == (1, 2, 20, 20)


def test_resnet_encoder_comes_from_the_zoo():
    model = create_model("unet_resnet18", in_chans=1, num_classes=3)
    assert isinstance(model.encoder, FeatureExtractor)
    assert type(model.encoder.model).__name__ == "ResNet"
    assert model.encoder.model.conv1.in_channels == 1
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    assert model.skip_reductions == [16, 8, 4, 2, None]  # the full-resolution stage has no skip
    resnet18 = count(create_model("resnet18", in_chans=1, num_classes=0))
    assert count(model.encoder) == resnet18
    assert count(create_model("unet_resnet34")) - count(create_model("unet_resnet18")) == (
        count(create_model("resnet34", num_classes=0)) - count(create_model("resnet18", num_classes=0))
    )


def test_resnet_unet_can_be_deep_copied():
    """Deep copies (EMA, the model contract tests) must fill their own feature hooks."""
    model = create_model("unet_resnet18").eval()
    clone = copy.deepcopy(model)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))
    assert not model.encoder._captured and not clone.encoder._captured


def test_features_only_and_reset_classifier():
    extractor = create_model("unet", features_only=True, base_width=8)
    maps = extractor(torch.randn(1, 1, 37, 53))  # padded to 48x64 first
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 48, 64), (16, 24, 32), (32, 12, 16), (64, 6, 8), (128, 3, 4)]
    model = UNet(base_width=8).eval()
    model.reset_classifier(0)
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 8, 16, 16) and model.out_chans == 8


def test_grad_checkpointing_gives_the_same_gradients():
    for make in (
        lambda: UNet(base_width=4, depth=2, residual=True, zero_init_residual=False),
        lambda: ResNetUNet("resnet18", decoder_widths=(8, 8, 8, 8, 8)),
    ):
        torch.manual_seed(0)
        reference = make()
        checkpointed = copy.deepcopy(reference)
        checkpointed.set_grad_checkpointing(True)
        x = torch.randn(2, 1, 32, 32)
        for model in (reference, checkpointed):
            model(x).square().mean().backward()
        for (name, a), b in zip(reference.named_parameters(), checkpointed.parameters()):
            assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4), name


def test_bad_options_and_inputs_are_explained():
    with pytest.raises(ValueError, match="pad_mode must be one of"):
        UNet(pad_mode="circular")
    with pytest.raises(ValueError, match="up_mode must be one of"):
        UNet(up_mode="pixelshuffle")
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        UNet(depth=0)
    with pytest.raises(ValueError, match="drop_path_rate needs residual blocks"):
        create_model("unet", drop_path_rate=0.1)
    with pytest.raises(ValueError, match="fixes residual=False"):
        create_model("unet", residual=True)
    with pytest.raises(ValueError, match="needs 5 widths"):
        ResNetUNet(decoder_widths=(64, 32))
    with pytest.raises(ValueError, match="in_chans=1.*create the model with in_chans=3"):
        create_model("unet", base_width=4)(torch.randn(1, 3, 16, 16))


def test_drop_path_grows_along_the_forward_path():
    model = create_model("unet_residual", base_width=4, depth=2, drop_path_rate=0.25)
    rates = [m.p for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25])


# --------------------------------------------------------------------------- synthetic cells
def test_cells_are_deterministic_and_prefix_stable():
    images, masks = generate_cells(70, size=32, seed=3)
    again, again_masks = generate_cells(70, size=32, seed=3)
    assert torch.equal(images, again) and torch.equal(masks, again_masks)
    first, first_masks = generate_cells(5, size=32, seed=3)
    assert torch.equal(first, images[:5]) and torch.equal(first_masks, masks[:5])
    other, _ = generate_cells(5, size=32, seed=4)
    assert not torch.equal(other, first)
    test, _ = generate_cells(5, size=32, seed=3, split="test")
    assert not torch.equal(test, first)


def test_cells_images_and_masks():
    images, masks = generate_cells(64, size=64, boundary=True, in_chans=2)
    assert images.shape == (64, 2, 64, 64) and images.dtype == torch.uint8
    assert masks.shape == (64, 64, 64) and masks.dtype == torch.int64
    fractions = torch.bincount(masks.flatten(), minlength=3).double() / masks.numel()
    assert 0.6 < fractions[0] < 0.95 and 0.05 < fractions[1] < 0.35 and 0.01 < fractions[2] < 0.1
    assert (masks > 0).flatten(1).any(1).all()  # every image has cells
    # cells are brighter than the background on average
    grey = images.float().mean(1)
    assert grey[masks == 1].mean() > grey[masks == 0].mean() + 30
    _, two_class = generate_cells(64, size=64, in_chans=2)
    assert torch.equal(two_class, (masks > 0).long())  # same cells, boundary folded into "cell"


def test_instance_boundaries_separate_touching_cells():
    inst = torch.zeros(1, 6, 8, dtype=torch.int64)
    inst[0, 1:5, 1:4] = 1
    inst[0, 1:5, 4:7] = 2  # touching cell 1
    edge = instance_boundaries(inst)[0]
    assert edge[2, 3] and edge[2, 4]  # both sides of the contact line
    assert edge[1, 2] and not edge[2, 2]  # outline yes, interior no
    assert not edge[0].any()  # background never
    border = torch.ones(1, 3, 3, dtype=torch.int64)
    assert not instance_boundaries(border).any()  # the image border is not an edge


def test_cells_splits_dataset():
    splits = cells_splits(train=10, val=4, test=0, size=32, boundary=True)
    assert set(splits) == {"train", "val"}
    train, val = splits["train"], splits["val"]
    assert isinstance(train, SegmentationDataset) and len(train) == 10 and len(val) == 4
    assert train.classes == ["background", "cell", "boundary"] and train.num_classes == 3
    assert train.mean == val.mean and 0 < train.mean[0] < 1 and train.std[0] > 0
    assert sum(train.class_pixel_counts()) == 10 * 32 * 32
    assert len(train.subset(torch.tensor([0, 2]))) == 2
    with pytest.raises(ValueError, match="mask labels must lie in"):
        SegmentationDataset(train.images, train.masks + 5, train.classes, train.mean, train.std, "bad")
    with pytest.raises(ValueError, match="at least 16x16"):
        generate_cells(2, size=8)


# --------------------------------------------------------------------------- Dice / IoU / loss
def test_perfect_prediction_scores_one_and_disjoint_zero():
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    target[:, 2:5, 2:5] = 1
    assert dice_score(target, target, 2) == 1.0 and iou_score(onehot_logits(target, 2), target, 2) == 1.0
    disjoint = torch.zeros_like(target)
    disjoint[:, 6:, 6:] = 1
    assert dice_score(disjoint, target, 2) == 0.0 and iou_score(disjoint, target, 2) == 0.0


def test_known_overlap():
    target = torch.zeros(1, 4, 4, dtype=torch.int64)
    target[0, :, :2] = 1  # 8 pixels of class 1
    pred = torch.zeros_like(target)
    pred[0, :2, :] = 1  # 8 pixels, 4 of them right
    tp, fp, fn = confusion_counts(pred, target, 2)[1].tolist()
    assert (tp, fp, fn) == (4, 4, 4)
    assert dice_score(pred, target, 2) == pytest.approx(2 * 4 / (8 + 8))
    assert iou_score(pred, target, 2) == pytest.approx(4 / 12)


def test_per_class_scores_absent_classes_and_ignore_index():
    target = torch.tensor([[[0, 1], [1, 2]]])
    scores = SegmentationScores(num_classes=4)
    scores.update(target, target)
    assert scores.dice[:3].tolist() == [1.0, 1.0, 1.0] and torch.isnan(scores.dice[3])
    assert scores.mean_dice == 1.0  # the absent class 3 is left out, background too
    pred = torch.tensor([[[0, 1], [2, 2]]])
    scores = SegmentationScores(num_classes=3, ignore_index=255)
    scores.update(pred, torch.tensor([[[0, 1], [255, 2]]]))  # the only mistake is on an ignored pixel
    assert scores.mean_iou == 1.0
    values = scores.as_dict("val_")
    assert values["val_dice"] == 1.0 and values["val_iou_2"] == 1.0


def test_scores_accumulate_over_batches():
    torch.manual_seed(0)
    pred, target = torch.randint(0, 3, (4, 16, 16)), torch.randint(0, 3, (4, 16, 16))
    whole = SegmentationScores(3)
    whole.update(pred, target)
    parts = SegmentationScores(3)
    for i in range(4):
        parts.update(pred[i : i + 1], target[i : i + 1])
    assert torch.equal(whole.counts, parts.counts)


def test_dice_ce_loss():
    target = torch.randint(0, 3, (2, 16, 16))
    loss = DiceCELoss()
    assert loss(onehot_logits(target, 3), target).item() == pytest.approx(0, abs=1e-5)
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    value = loss(logits, target)
    expected = nn.functional.cross_entropy(logits, target) + 1 - soft_dice(logits, target)
    assert value.item() == pytest.approx(expected.item())
    value.backward()
    assert logits.grad.abs().sum() > 0
    assert DiceCELoss(dice_weight=0)(logits, target).item() == pytest.approx(
        nn.functional.cross_entropy(logits, target).item()
    )
    # a wrong confident prediction costs more than a right one
    assert loss(onehot_logits((target + 1) % 3, 3), target) > loss(onehot_logits(target, 3), target) + 1


def test_loss_errors_are_explained():
    logits = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="target must be class indices"):
        DiceCELoss()(logits, torch.zeros(2, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        DiceCELoss()(logits, torch.full((2, 8, 8), 3))
    with pytest.raises(ValueError, match="integer class indices"):
        DiceCELoss()(logits, torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="logits have 3 channels"):
        dice_score(logits, torch.zeros(2, 8, 8, dtype=torch.int64), 2)
