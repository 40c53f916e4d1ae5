"""--data spec parsing, synthetic data, batched augmentation and the BatchLoader."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skiplab.data import (
    Augmentation,
    BatchLoader,
    DataPathError,
    ImageDataset,
    channel_stats,
    load_dataset,
    normalize,
    parse_data_spec,
    split_indices,
)
from skiplab.data.synthetic import CLASSES, generate_shapes


# ---- spec -----------------------------------------------------------------------------------
def test_spec_kinds_and_paths(tmp_path):
    s = parse_data_spec(f"cifar10:{tmp_path}")
    assert (s.kind, s.path) == ("cifar10", tmp_path)
    assert parse_data_spec(f"folder:{tmp_path}").kind == "folder"
    assert parse_data_spec("synthetic").name == "shapes"
    s = parse_data_spec("synthetic:shapes-2k,seed=3")
    assert (s.name, s.options) == ("shapes-2k", {"seed": "3"})


@pytest.mark.parametrize(
    "bad, message",
    [
        ("imagenet:/x", "unknown data kind 'imagenet'.*cifar10, cifar100, folder, synthetic"),
        ("cifar10", "needs a path"),
        ("folder:", "needs a path"),
        ("", "non-empty"),
        ("synthetic:shapes,seed", "key=value"),
    ],
)
def test_spec_errors_say_what_is_expected(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_data_spec(bad)


def test_missing_path_is_both_file_not_found_and_value_error(tmp_path):
    with pytest.raises(DataPathError, match="does not exist.*nope") as info:
        load_dataset(f"cifar10:{tmp_path / 'nope'}")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)


def test_bad_split_and_val_without_size():
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset("synthetic:shapes-50", "valid")
    with pytest.raises(ValueError, match="val_size > 0"):
        load_dataset("synthetic:shapes-50", "val")
    with pytest.raises(ValueError, match=r"val_size must be in \[0, 50\)"):
        load_dataset("synthetic:shapes-50", "val", val_size=50)


# ---- synthetic ------------------------------------------------------------------------------
def test_synthetic_is_deterministic_balanced_and_seeded():
    a_img, a_lab = generate_shapes(200, seed=0)
    b_img, b_lab = generate_shapes(200, seed=0)
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    assert a_img.shape == (200, 3, 32, 32) and a_img.dtype == torch.uint8
    assert torch.bincount(a_lab).tolist() == [20] * 10
    assert not torch.equal(generate_shapes(200, seed=1)[0], a_img)
    assert not torch.equal(generate_shapes(200, stream="test")[0], a_img)


def test_synthetic_spec_sizes_names_and_stats():
    train = load_dataset("synthetic:shapes-300,test=40", "train")
    test = load_dataset("synthetic:shapes-300,test=40", "test")
    assert (len(train), len(test)) == (300, 40) and train.classes == CLASSES
    assert train.mean == test.mean and train.mean == pytest.approx(channel_stats(train.images)[0])
    # the test set does not depend on the training size
    other = load_dataset("synthetic:shapes-200,test=40", "test")
    assert torch.equal(other.images, test.images)
    with pytest.raises(ValueError, match="unknown synthetic dataset 'blobs'"):
        load_dataset("synthetic:blobs")


def test_synthetic_is_not_separable_by_colour_statistics():
    """Class is the form, not the colour: a nearest-class-mean classifier on per-image
    channel means stays near chance (10%)."""
    images, labels = generate_shapes(2000, seed=5)
    feats = images.float().mean((2, 3))
    means = torch.stack([feats[labels == c].mean(0) for c in range(10)])
    pred = torch.cdist(feats, means).argmin(1)
    assert (pred == labels).float().mean() < 0.2


# ---- dataset and split ------------------------------------------------------------------------
def test_dataset_validates_types():
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), ["a"], (0,) * 3, (1,) * 3, "x")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\)"):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["a"], (0,) * 3, (1,) * 3, "x")


def test_split_is_stratified_deterministic_and_disjoint():
    labels = torch.arange(1000) % 10
    train, val = split_indices(labels, 100, seed=4)
    assert torch.bincount(labels[val]).tolist() == [10] * 10
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(1000))
    again = split_indices(labels, 100, seed=4)
    assert torch.equal(again[1], val) and not torch.equal(split_indices(labels, 100, 5)[1], val)


def test_channel_stats_match_float_reference():
    images = torch.randint(0, 256, (37, 3, 5, 7), dtype=torch.uint8)
    mean, std = channel_stats(images)
    ref = images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert mean == pytest.approx(ref.mean(1).tolist(), abs=1e-9)
    assert std == pytest.approx(ref.std(1, unbiased=False).tolist(), abs=1e-9)


# ---- augmentation ---------------------------------------------------------------------------
def _ramp(batch: int = 1, size: int = 8) -> torch.Tensor:
    return (torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size) + 1).repeat(batch, 3, 1, 1)


def _reference(x, p, mode, oy, ox, flip, size=None):
    """Pad then crop one sample the obvious way (``size``: the crop side, default the image's)."""
    padded = F.pad(x[None], (p, p, p, p), mode="constant" if mode == "zeros" else "reflect")[0]
    out = padded[:, oy : oy + (size or x.shape[1]), ox : ox + (size or x.shape[2])]
    return out.flip(2) if flip else out


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crop_and_flip_equal_pad_then_crop_per_sample(mode):
    aug = Augmentation(crop_padding=3, pad_mode=mode, flip=True)
    x = torch.randn(64, 3, 8, 8)
    params = aug.sample_params(64, 8, 8, torch.Generator().manual_seed(0))
    out = aug.apply(x, params)
    for b in range(64):
        ref = _reference(x[b], 3, mode, int(params.offset_y[b]), int(params.offset_x[b]), bool(params.flip[b]))
        assert torch.equal(out[b], ref)
    assert params.offset_y.min() >= 0 and params.offset_y.max() <= 6


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_small_crops_equal_pad_then_crop_and_cover_every_offset(mode):
    aug = Augmentation(crop_padding=2, pad_mode=mode, flip=True, crop_size=5, cutout=2)
    x = torch.randn(400, 3, 8, 8)
    params = aug.sample_params(400, 8, 8, torch.Generator().manual_seed(0))
    params.cutout_y[:] = -9  # cutout outside the crop: compare crops only
    out = aug.apply(x, params)
    assert out.shape == (400, 3, 5, 5)
    for b in range(0, 400, 7):
        ref = _reference(x[b], 2, mode, int(params.offset_y[b]), int(params.offset_x[b]), bool(params.flip[b]), size=5)
        assert torch.equal(out[b], ref)
    # every window of the 12x12 padded image: offsets 0..7 on both axes
    assert set(params.offset_y.tolist()) == set(range(8)) == set(params.offset_x.tolist())
    centres = aug.sample_params(400, 8, 8, torch.Generator()).cutout_x
    assert centres.max() == 4  # cutout centres lie in the crop


def test_crop_size_epochs_switches_to_full_size_and_keeps_the_other_choices():
    aug = Augmentation(crop_padding=2, crop_size=24, crop_size_epochs=3)
    assert aug.for_epoch(2) is aug and aug.for_epoch(3) == Augmentation(crop_padding=2)
    assert Augmentation(crop_size=24).for_epoch(50).crop_size == 24  # 0 epochs: always
    full = Augmentation(crop_padding=2)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    # a crop_size equal to the image size draws exactly what no crop_size draws
    same = Augmentation(crop_padding=2, crop_size=32).sample_params(64, 32, 32, g())
    assert torch.equal(same.offset_y, full.sample_params(64, 32, 32, g()).offset_y)
    loader = BatchLoader(load_dataset("synthetic:shapes-40,test=10", "train"), 20, augment=aug)
    sizes = []
    for epoch in range(5):
        loader.set_epoch(epoch)
        sizes.append(next(iter(loader))[0].shape[-1])
    assert sizes == [24, 24, 24, 32, 32]


def test_zero_vs_reflect_padding_values():
    x = _ramp()
    for mode in ("zeros", "reflect"):
        aug = Augmentation(crop_padding=2, pad_mode=mode, flip=False)
        p = aug.sample_params(1, 8, 8, torch.Generator())
        p.offset_y[:], p.offset_x[:] = 0, 0  # shift content by +2 down and right
        out = aug.apply(x, p)[0, 0]
        if mode == "zeros":
            assert out[:2].abs().sum() == 0 and out[:, :2].abs().sum() == 0
        else:  # reflect without repeating the edge: row -1 is row 1, row -2 is row 2
            assert torch.equal(out[0], out[4]) and torch.equal(out[1], out[3])
        assert torch.equal(out[2:, 2:], x[0, 0, :6, :6])


def test_flip_probability_and_crop_offsets_are_uniform():
    aug = Augmentation(crop_padding=4)
    p = aug.sample_params(20000, 32, 32, torch.Generator().manual_seed(1))
    assert abs(p.flip.float().mean().item() - 0.5) < 0.02
    counts = torch.bincount(p.offset_x, minlength=9)
    assert len(counts) == 9 and counts.min() > 20000 / 9 * 0.85
    flipped = Augmentation(crop_padding=0, flip=True)(_ramp(4000), torch.Generator().manual_seed(2))
    rate = (flipped[:, 0, 0, 0] == 8).float().mean().item()  # first pixel now the row's last
    assert abs(rate - 0.5) < 0.03


def test_alternate_flip_mirrors_each_image_in_every_other_epoch():
    n = 400
    images = torch.arange(8, dtype=torch.uint8).repeat(n, 3, 8, 1)  # columns 0..7
    dataset = ImageDataset(images, torch.zeros(n, dtype=torch.long), ["a"], (0.0,) * 3, (1.0,) * 3, "ramp")
    loader = BatchLoader(
        dataset, 100, shuffle=True, seed=3, augment=Augmentation(crop_padding=0, flip=True, alternate_flip=True)
    )

    def flipped_in(epoch):  # sample index -> mirrored?
        loader.set_epoch(epoch)
        order = loader.rank_order(epoch)
        mirrored = torch.cat([x[:, 0, 0, 0] > 0 for x, _ in loader])  # first column now 7/255
        return mirrored[torch.argsort(order)]

    first, second, third = flipped_in(0), flipped_in(1), flipped_in(2)
    assert torch.equal(first, ~second) and torch.equal(first, third)
    assert abs(first.float().mean().item() - 0.5) < 0.1


def test_cutout_zeroes_a_square_clipped_at_the_border():
    aug = Augmentation(crop_padding=0, flip=False, cutout=4)
    x = torch.ones(2, 3, 8, 8)
    p = aug.sample_params(2, 8, 8, torch.Generator())
    p.cutout_y[:] = torch.tensor([4, 0])
    p.cutout_x[:] = torch.tensor([4, 7])
    out = aug.apply(x, p)
    assert (out[0] == 0).sum() == 3 * 16 and out[0, :, 2:6, 2:6].abs().sum() == 0
    assert (out[1] == 0).sum() == 3 * 2 * 3 and out[1, :, :2, 5:].abs().sum() == 0  # clipped


def test_augmentation_validates():
    with pytest.raises(ValueError, match="pad_mode"):
        Augmentation(pad_mode="edge")
    with pytest.raises(ValueError, match="float batch"):
        Augmentation()(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.Generator())
    with pytest.raises(ValueError, match="crop_size must be >= 0; found -1"):
        Augmentation(crop_size=-1)
    with pytest.raises(ValueError, match="crop_size 13 does not fit in 8x8 images padded by 2"):
        Augmentation(crop_padding=2, crop_size=13)(torch.zeros(2, 3, 8, 8), torch.Generator())


def test_normalize_per_channel():
    x = torch.full((2, 3, 4, 4), 0.5)
    out = normalize(x, (0.5, 0.25, 0.0), (1.0, 0.5, 0.25))
    assert out[:, 0].eq(0).all() and out[:, 1].eq(0.5).all() and out[:, 2].eq(2).all()


# ---- loader ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small() -> ImageDataset:
    return load_dataset("synthetic:shapes-250,test=10", "train")


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_loader_output_format_and_normalisation(small):
    loader = BatchLoader(small, 50, shuffle=False, channels_last=True)
    x, y = next(iter(loader))
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    expected = normalize(small.images[:50].float() / 255, small.mean, small.std)
    assert torch.allclose(x, expected, atol=1e-6) and torch.equal(y, small.labels[:50])
    assert len(loader) == 5


def test_loader_same_seed_epoch_same_batches(small):
    aug = Augmentation(crop_padding=4, cutout=8)
    a = BatchLoader(small, 32, seed=7, augment=aug)
    b = BatchLoader(small, 32, seed=7, augment=aug)
    a.set_epoch(3)
    b.set_epoch(3)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a.rank_order(3), a.rank_order(4))
    assert not torch.equal(a.rank_order(3), BatchLoader(small, 32, seed=8).rank_order(3))
    # iterating again after a finished epoch moves on to epoch 4, as set_epoch(4) would
    c = BatchLoader(small, 32, seed=7, augment=aug)
    c.set_epoch(4)
    xa, ya = next(iter(a))
    xc, yc = next(iter(c))
    assert a.epoch == 4 and torch.equal(xa, xc) and torch.equal(ya, yc)


def test_loader_epoch_is_a_permutation_and_drop_last(small):
    loader = BatchLoader(small, 32)
    seen = torch.cat([y for _, y in loader])
    assert len(loader) == 7 and len(seen) == 224
    assert torch.equal(loader.rank_order(0).sort().values, torch.arange(250))
    keep = BatchLoader(small, 32, drop_last=False)
    sizes = [len(y) for _, y in keep]
    assert len(keep) == 8 and sizes[-1] == 250 - 7 * 32


def test_loader_resume_mid_epoch_gives_the_remaining_batches_exactly(small):
    aug = Augmentation(crop_padding=4, pad_mode="reflect")
    full = BatchLoader(small, 32, seed=1, augment=aug)
    full.set_epoch(2)
    expected = _batches(full)
    first = BatchLoader(small, 32, seed=1, augment=aug)
    first.set_epoch(2)
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    assert state == {"epoch": 2, "batch": 3}
    resumed = BatchLoader(small, 32, seed=1, augment=aug)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a trainer re-selecting the epoch keeps the position
    rest = _batches(resumed)
    assert len(rest) == len(expected) - 3
    for (x, y), (ex, ey) in zip(rest, expected[3:]):
        assert torch.equal(x, ex) and torch.equal(y, ey)
    resumed.set_epoch(3)
    assert resumed.state_dict() == {"epoch": 3, "batch": 0}
    with pytest.raises(ValueError, match="out of range"):
        resumed.load_state_dict({"epoch": 0, "batch": 99})


def test_loader_advances_epoch_when_iterated_again(small):
    loader = BatchLoader(small, 100)
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert loader.epoch == 1 and not torch.equal(first, second)


@pytest.mark.parametrize("world_size, drop_last", [(2, True), (3, True), (3, False)])
def test_ddp_shards_are_disjoint_equal_and_cover_the_epoch(small, world_size, drop_last):
    loaders = [
        BatchLoader(small, 16, rank=r, world_size=world_size, drop_last=drop_last, seed=3) for r in range(world_size)
    ]
    assert len({len(ld) for ld in loaders}) == 1
    orders = [ld.rank_order(5) for ld in loaders]
    flat = torch.cat(orders)
    if drop_last:
        assert len(set(flat.tolist())) == len(flat) == world_size * (250 // world_size)
    else:  # padded by wrapping around: every sample at least once
        assert set(flat.tolist()) == set(range(250)) and len(flat) == world_size * math.ceil(250 / world_size)


def test_ddp_union_of_rank_batches_equals_single_process_global_batch(small):
    aug = Augmentation(crop_padding=4, cutout=6)
    single = BatchLoader(small, 48, seed=9, augment=aug)
    ranks = [BatchLoader(small, 16, seed=9, augment=aug, rank=r, world_size=3) for r in range(3)]
    for ld in [single] + ranks:
        ld.set_epoch(1)
    xs, ys = next(iter(single))
    parts = [next(iter(ld)) for ld in ranks]
    for r, (x, y) in enumerate(parts):  # rank r holds positions r, r + 3, ... of the global batch
        assert torch.equal(y, ys[r::3]) and torch.equal(x, xs[r::3])


def test_loader_validates(small):
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(small, 8, rank=2, world_size=2)
    with pytest.raises(ValueError, match="no full batch"):
        BatchLoader(small, 1000)
