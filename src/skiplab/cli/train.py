"""``skiplab train``: train a registered model from a YAML recipe, any field overridden by a flag."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import typing
from typing import Any, Optional

EXAMPLE = """\
examples:
  skiplab train --config configs/he2015_cifar.yaml --model cifar_resnet20 \\
      --data cifar10:../shared/data/cifar10-jpg --out runs/resnet20
  skiplab train --config configs/he2015_cifar.yaml --out runs/resnet20 --resume   # continue
  skiplab train --config configs/fast_cifar.yaml --data cifar10:PATH --out runs/fast --epochs 12
  skiplab train --model cifar_resnet20 --data synthetic:patterns --epochs 3   # -> runs/cifar_resnet20-<time>/
      # (no download: 8 texture classes; measured 89.3 % test accuracy after 3 epochs, chance 12.5 %)
  torchrun --nproc_per_node 2 -m skiplab train --config configs/wrn_cifar.yaml --out runs/wrn
  skiplab train --model cifar_resnet20 --data folder:grey/ --init-from runs/resnet20/checkpoints/last.pt \\
      --layer-decay 0.75 --steps 300 --lr 0.02   # fine-tune: grey stem adapted, new head
  skiplab train ... --init-from resnet50.pth --freeze backbone   # feature extraction (head only)
  skiplab train ... --init-from CKPT --freeze stem stage1        # frozen BatchNorm stays in eval
  skiplab train --config configs/unet_cells.yaml --out runs/unet          # segmentation
  skiplab train --task segment --model unet_residual --data synthetic:cells-2k --val-size 200
  skiplab train --config configs/sar_ae.yaml --data sar:scenes/ --val-size 64 --out runs/ae
  skiplab train --task reconstruct --model sar_ae_all --data synthetic-sar-64,looks=4 \\
      --tile-size 64 --loss '{l1: 1.0, ssim: 0.2}' --out runs/ae_try

Tasks (--task) and their data (--data):
  classify     cifar10:PATH, cifar100:PATH, folder:PATH,
               synthetic[:shapes[-N]|:patterns[-N]][,test=M,seed=S] (shapes: 10 classes of forms,
               slower to learn; patterns: 8 classes of textures, learnt in a few hundred steps)
               metrics.csv: loss, acc; best.pt by val_acc
  segment      synthetic:cells[-N][,test=M,seed=S,boundary=1,chans=C]   (N images, default 1000)
               metrics.csv: loss, acc (pixels), dice, iou; best.pt by val_dice
  reconstruct  synthetic:sar[-N][,looks=L,test=M,seed=S], same as synthetic-sar[-N][,...]
               (N speckled tiles, default 200, L looks, default 1); sar:PATH (a raster or a
               directory of rasters; PATH/train and PATH/test if present are the splits)
               metrics.csv: loss, psnr, ssim; best.pt by val_loss; the checkpoint holds the
               radiometry (normalisation fitted on the training tiles) and compression figures
Counts take a k suffix (cells-2k). --tile-size sets the image/tile side (SAR 256, cells 64);
--val-size N holds N training samples out for validation (deterministic for a seed).

Every config field is a flag (batch_size: --batch-size); flags override the recipe.
Booleans take --flag / --no-flag; lists take several values (--milestones 32000 48000);
--model-kwargs takes YAML ('{drop_path_rate: 0.1}'). A length given here replaces the
recipe's other one (--epochs 1 on a steps recipe trains one epoch; see --print-config).

The run directory (--out, default runs/<model>-<timestamp>/) gets config.yaml, metrics.csv,
TensorBoard events and checkpoints/{last,best}.pt. last.pt is written at each epoch end,
every --checkpoint-minutes (10) and on Ctrl-C / SIGTERM: the current step finishes, last.pt
is saved, the exact --resume command is printed and the exit status is 130 / 143 (a second
signal stops at once). retain_memory is on here (off for fit() from Python).
See docs/training.md.
"""


def _field_type(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a model (recipes in configs/, resumable, DDP under torchrun)",
        description="Train a registered model on a dataset. Start from a YAML recipe (--config) "
        "and override any field with a flag.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit without training")
    add_config_arguments(p)
    p.set_defaults(run=run)
    return p


def add_config_arguments(p: argparse.ArgumentParser, skip: tuple = ()) -> None:
    """--config YAML and one flag per TrainConfig field (except ``skip``); the parser must
    use ``argument_default=argparse.SUPPRESS`` so that only given flags override the recipe."""
    from ..train.config import TrainConfig

    p.add_argument("--config", metavar="YAML", help="recipe file (e.g. configs/he2015_cifar.yaml)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        tp = _field_type(hints[f.name])
        names = [f"--{f.name.replace('_', '-')}"]
        doc = f.metadata["doc"].replace("%", "%%")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"{doc} (default: {default})"
        if tp is bool:
            p.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text)
        elif tp is list:
            item = {"betas": float, "freeze": str}.get(f.name, int)
            p.add_argument(
                *names, dest=f.name, nargs="+", type=item, metavar="NAME" if item is str else "N", help=help_text
            )
        elif tp is dict:
            p.add_argument(*names, dest=f.name, type=_yaml_mapping, metavar="YAML", help=help_text)
        else:
            choices = f.metadata["choices"] or None
            p.add_argument(
                *names,
                dest=f.name,
                type=tp,
                choices=choices,
                help=help_text,
                metavar=None if choices else f.name.upper(),
            )
    p.add_argument("--no-compile", dest="compile", action="store_const", const="off", help="same as --compile off")


def _yaml_mapping(text: str) -> dict:
    from ..train.config import parse_yaml

    try:
        value = parse_yaml(text, "the value")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err} (got {text!r})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping like '{{drop_path_rate: 0.1}}', got {text!r}")
    return value


NOT_CONFIG = ("config", "print_config", "run", "command", "argv")


def resolve_config(args: argparse.Namespace, extra: Optional[dict] = None):
    """The TrainConfig of a command line: the recipe, the flags over it (``extra`` over both),
    a length given on the command line replacing the recipe's other one (--epochs drops the
    recipe's steps, --steps its epochs), and retain_memory on unless the recipe or a flag says
    otherwise."""
    from ..train import TrainConfig

    overrides = {k: v for k, v in vars(args).items() if k not in NOT_CONFIG and k in TrainConfig.__dataclass_fields__}
    overrides.update(extra or {})
    if "epochs" in overrides and "steps" not in overrides:
        overrides["steps"] = 0  # the recipe's steps would override --epochs
    config_path = getattr(args, "config", None)
    config = TrainConfig.from_yaml(config_path, overrides) if config_path else TrainConfig.from_dict(overrides)
    if config.retain_memory is None:
        config = config.replace(retain_memory=True)
    return config


def resume_command(argv: list[str], run_dir: str) -> str:
    """The command line that continues the run in ``run_dir``: ``argv`` with ``--out`` set and
    ``--resume`` added (under torchrun, the torchrun command)."""
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in ("--out",):
            skip = True
        elif not (word.startswith("--out=") or word in ("--resume", "--no-resume")):
            words.append(word)
    words += ["--out", run_dir, "--resume"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    prefix = f"torchrun --nproc_per_node {world} -m skiplab" if world > 1 else "skiplab"
    return f"{prefix} {shlex.join(words)}"


def run(args: argparse.Namespace) -> int:
    from ..train import NonFiniteLossError, TrainingInterrupted, fit

    config = resolve_config(args)
    if getattr(args, "print_config", False):
        print(config.to_yaml(), end="")
        return 0
    try:
        result = fit(config)
    except NonFiniteLossError as err:
        print(f"skiplab train: stopped: {err}", file=sys.stderr)
        return 3
    except TrainingInterrupted as stop:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"skiplab train: {stop.summary}", file=sys.stderr)
            if stop.checkpoint is not None:
                argv = getattr(args, "argv", None) or ["train"]
                print(
                    f"resume with: {resume_command(argv, str(stop.checkpoint.parent.parent))}",
                    file=sys.stderr,
                    flush=True,
                )
        return stop.exit_code
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for all
        final = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.metrics.items())
        print(f"final: {final}")
    return 0
