"""``synthetic:patterns``: the study's default 16x16 texture task."""

import pytest
import torch

from skiplab.data import load_dataset
from skiplab.data.synthetic import generate_patterns
from skiplab.data.synthetic_patterns import PATTERN_CLASSES, render_patterns
from skiplab.models import create_model


def test_patterns_are_deterministic_balanced_16x16_and_seeded():
    images, labels = generate_patterns(160, seed=0)
    again, again_labels = generate_patterns(160, seed=0)
    assert images.shape == (160, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    assert labels.bincount().tolist() == [20] * len(PATTERN_CLASSES) == [20] * 8
    assert not torch.equal(generate_patterns(160, seed=1)[0], images)
    assert not torch.equal(generate_patterns(160, stream="test")[0], images)


def test_patterns_spec_sizes_and_classes():
    train = load_dataset("synthetic:patterns-80,test=16", "train")
    test = load_dataset("synthetic:patterns-80,test=16", "test")
    assert (len(train), len(test)) == (80, 16) and train.classes == PATTERN_CLASSES
    # the test split does not depend on the training size
    other = load_dataset("synthetic:patterns-40,test=16", "test")
    assert torch.equal(other.images, test.images)


def test_horizontal_flip_keeps_the_class_statistics():
    # the study flips images: a flipped diagonal texture must still be a "diagonal" one,
    # so the two diagonals are equally frequent in the class (orientation energy balanced)
    g = torch.Generator().manual_seed(0)
    images = render_patterns(torch.full((400,), 2), g).mean(1)  # coarse diagonal
    f = torch.fft.fft2(images - images.mean((1, 2), keepdim=True)).abs().mean(0)
    # energy in the (+,+) and (+,-) quadrants of the spectrum: the two diagonals
    main, anti = f[1:8, 1:8].sum(), f[1:8, 9:].sum()
    assert 0.8 < main / anti < 1.25


@pytest.mark.slow
def test_a_cifar_resnet_learns_patterns_in_a_few_steps():
    # the point of the task: well above chance after few SGD steps (chance loss ln 8 = 2.08)
    torch.manual_seed(0)
    images, labels = generate_patterns(512, seed=3)
    x = images.float() / 255
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    net = create_model("cifar_resnet", depth=8, num_classes=8, zero_init_residual=False)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for step in range(40):
        idx = torch.arange(step * 64, step * 64 + 64) % 512
        loss = torch.nn.functional.cross_entropy(net(x[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x).argmax(1) == labels).float().mean().item()
    assert acc > 0.35, acc  # chance is 0.125
