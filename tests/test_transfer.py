"""Transfer learning: freeze (frozen weights and BatchNorm statistics bit-identical after
training), layer-wise lr decay (the documented per-group rates), init_from a state dict of
another stem width and class count."""

from __future__ import annotations

import pytest
import torch

from skiplab.data import ImageDataset
from skiplab.models import create_model
from skiplab.train import TrainConfig
from skiplab.train.checkpoint import initial_model
from skiplab.train.loop import Trainer
from skiplab.train.optim import build_optimizer
from skiplab.train.tasks import make_task
from skiplab.train.transfer import freeze, frozen_norms, layer_ids

SMALL = dict(
    save=False,
    progress=False,
    tensorboard=False,
    compile="off",
    device="cpu",
    precision="fp32",
    channels_last=False,
    batch_size=16,
    eval_split="none",
    data="synthetic:shapes-64",
    schedule="constant",
    lr=0.1,
    weight_decay=1e-3,
)


def _grey_dataset(n: int = 32, classes: int = 4) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset(
        images=torch.randint(0, 256, (n, 1, 32, 32), dtype=torch.uint8, generator=g),
        labels=torch.arange(n) % classes,
        classes=[f"c{i}" for i in range(classes)],
        mean=(0.5,),
        std=(0.25,),
        name="grey",
    )


def _run(**changes) -> tuple[dict, dict, Trainer]:
    """State before and after 3 training steps of a run of ``changes``."""
    trainer = Trainer(TrainConfig.from_dict({**SMALL, "steps": 3, **changes}))
    try:
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.fit()
        return before, trainer.model.state_dict(), trainer
    finally:
        trainer.close()


def test_freeze_keeps_weights_and_batchnorm_statistics_bit_identical():
    before, after, _ = _run(freeze=["stem", "stage1"])
    frozen = [k for k in before if k.startswith(("conv1.", "bn1.", "layer1."))]
    assert any(k.endswith("running_mean") for k in frozen)
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    moved = [k for k in before if k.startswith(("layer3.", "fc.")) and not torch.equal(before[k], after[k])]
    assert "fc.weight" in moved and "layer3.0.bn1.running_mean" in moved


def test_feature_extraction_trains_the_head_only():
    before, after, trainer = _run(freeze=["backbone"])
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == 2


def test_freeze_by_pattern_and_errors():
    model = create_model("cifar_resnet20")
    names = freeze(model, ["layer2.0.*", "*.bn2"])
    assert "layer2.0.conv1.weight" in names and "layer3.1.bn2.bias" in names
    assert "layer2.1.conv1.weight" not in names
    assert model.layer3[1].bn2 in frozen_norms(model) and model.layer3[1].bn1 not in frozen_norms(model)
    with pytest.raises(ValueError, match="names no parameter"):
        freeze(create_model("cifar_resnet20"), ["layer9"])
    with pytest.raises(ValueError, match="stages 1..3"):
        freeze(create_model("cifar_resnet20"), ["stage4"])


def test_layer_ids_resnet_and_vit():
    ids, top = layer_ids(create_model("cifar_resnet20"))
    assert top == 10  # 9 blocks, head 10
    assert ids["conv1.weight"] == ids["bn1.bias"] == 0
    assert ids["layer1.0.conv1.weight"] == 1 and ids["layer3.2.bn2.weight"] == 9
    assert ids["fc.weight"] == 10
    ids, top = layer_ids(create_model("cifar_vit", depth=4))
    assert top == 5
    assert ids["patch_embed.proj.weight"] == ids["pos_embed"] == ids["cls_token"] == 0
    assert ids["blocks.3.mlp.fc2.weight"] == 4 and ids["norm.weight"] == ids["head.weight"] == 5


def test_layer_decay_gives_the_documented_learning_rates():
    decay = 0.5
    _, _, trainer = _run(layer_decay=decay, steps=2)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    ids, top = layer_ids(trainer.model)
    seen = set()
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert ids[names[id(p)]] == group["layer_id"]
        assert group["lr"] == pytest.approx(0.1 * decay ** (top - group["layer_id"]))
        seen.add(group["layer_id"])
    assert seen == set(range(top + 1))
    # the default: one rate, the groups as before
    plain = build_optimizer(create_model("cifar_resnet20"), TrainConfig.from_dict(SMALL))
    assert [g["lr_scale"] for g in plain.param_groups] == [1.0, 1.0]


def test_layer_decay_refuses_muon_and_out_of_range():
    with pytest.raises(ValueError, match="muon"):
        TrainConfig.from_dict({**SMALL, "layer_decay": 0.7, "optimizer": "muon"})
    with pytest.raises(ValueError, match="layer_decay"):
        TrainConfig.from_dict({**SMALL, "layer_decay": 1.5})


@pytest.mark.parametrize("kind", ["state_dict", "skiplab"])
def test_init_from_adapts_a_3_channel_stem_and_a_10_class_head(tmp_path, kind):
    torch.manual_seed(0)
    source = create_model("cifar_resnet20").eval()
    for m in source.modules():  # non-trivial statistics, so the BN buffers are checked
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "weights.pt"
    if kind == "state_dict":
        torch.save(source.state_dict(), path)
    else:
        _, _, trainer = _run(steps=1, save=True, out=str(tmp_path / "run"))
        path = tmp_path / "run" / "checkpoints" / "last.pt"
        source = create_model("cifar_resnet20")
        source.load_state_dict(trainer.model.state_dict())
        source.eval()
    grey = _grey_dataset()
    task = make_task(TrainConfig.from_dict({**SMALL, "init_from": str(path)}), check_data=False)
    lines: list[str] = []
    model, structure = initial_model(task, grey, str(path), log=lines.append)
    assert structure is None and model.in_chans == 1 and model.fc.out_features == 4
    assert len(lines) == 1 and "adapted 3 -> 1 channels" in lines[0]
    assert "(10 classes) dropped, a fresh 4-way head" in lines[0]
    assert torch.equal(model.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    x = torch.rand(2, 1, 32, 32)
    model.eval()
    with torch.no_grad():  # a grey image = that image as RGB through the source net
        assert torch.allclose(
            model.forward_head(model.forward_features(x), pre_logits=True),
            source.forward_head(source.forward_features(x.expand(-1, 3, -1, -1)), pre_logits=True),
            atol=1e-5,
        )


def test_init_from_trains_on_grey_data_with_freeze(tmp_path):
    torch.save(create_model("cifar_resnet20").state_dict(), tmp_path / "w.pt")
    grey = _grey_dataset()
    config = TrainConfig.from_dict(
        {**SMALL, "init_from": str(tmp_path / "w.pt"), "steps": 2, "freeze": ["backbone"], "layer_decay": 0.8}
    )
    trainer = Trainer(config, train_set=grey)
    try:
        start = trainer.model.conv1.weight.clone()
        trainer.fit()
        assert torch.equal(start, trainer.model.conv1.weight)
    finally:
        trainer.close()


def test_init_from_refuses_other_architectures(tmp_path):
    torch.save(create_model("cifar_resnet32").state_dict(), tmp_path / "w.pt")
    task = make_task(TrainConfig.from_dict(SMALL), check_data=False)
    with pytest.raises(ValueError, match="does not fit CifarResNet"):
        initial_model(task, _grey_dataset(), str(tmp_path / "w.pt"))
