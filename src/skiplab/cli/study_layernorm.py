"""``skiplab study --parts layernorm``: the pre-LN / post-LN / no-skip study (Xiong et al. 2020)
on the same runner, options and resume as the other parts.

The part trains its own transformer runs (``cifar_vit``: variant x depth x warm-up x seed)
and measures gradients at initialisation, so it runs alone: ``--parts layernorm`` (or
``parts: [layernorm]`` in a ``--config`` YAML, whose other keys are
:class:`~skiplab.studies.layernorm.LayerNormConfig`'s). ``--resume --out DIR`` finds the part
from DIR's state file. Not a command of its own: :mod:`skiplab.cli.study` routes to it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

PART = "layernorm"
#: the command line's study options that mean the same for this part
SHARED = ("data", "depths", "seeds", "steps", "seed", "precision", "train_images")
#: keys a --config YAML of this part may hold (LayerNormConfig's fields, and parts)
YAML_KEYS = (
    "parts",
    "data",
    "measure",
    "variants",
    "depths",
    "gradient_depths",
    "seeds",
    "gradient_seeds",
    "seed",
    "inits",
    "width",
    "steps",
    "lr",
    "batch_size",
    "train_images",
    "test_images",
    "gradient_images",
    "precision",
    "kept",
)


def _is_part(parts) -> bool:
    if parts is None:
        return False
    names = [p.strip() for p in (parts.split(",") if isinstance(parts, str) else parts)]
    if PART in names and len([p for p in names if p]) > 1:
        raise ValueError(
            f"the {PART} part trains its own transformer runs and runs alone: --parts {PART}, not {','.join(names)}"
        )
    return PART in names


def wanted_by(values: dict) -> bool:
    """Whether a YAML's (or the command line's) ``parts`` name this part."""
    return _is_part(values.get("parts"))


def wanted(args: argparse.Namespace, given: dict) -> bool:
    """Whether the command asks for this part: ``--parts layernorm``, a YAML's ``parts``,
    or ``--resume --out DIR`` where DIR holds this part's state."""
    from ..studies.layernorm.config import STATE_FILE

    if wanted_by(given):
        return True
    return bool((args.resume or args.restate) and args.out and (Path(args.out) / STATE_FILE).is_file())


def config_from(given: dict, quick: bool):
    """The part's configuration from the command line's and the YAML's options."""
    from ..studies.layernorm import LayerNormConfig

    values = {k: v for k, v in given.items() if k != "parts"}
    other = sorted(k for k in values if k not in YAML_KEYS)
    if other:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in other)
        raise ValueError(
            f"{flags}: not an option of the {PART} part (it takes --data, --depths, --seeds, "
            f"--steps, --seed, --precision, --train-images, and in a --config YAML "
            f"{', '.join(k for k in YAML_KEYS if k not in SHARED + ('parts',))})"
        )
    return LayerNormConfig.create(quick=quick, **values)


def run(args: argparse.Namespace, given: dict) -> int:
    from ..studies.layernorm import LayerNormConfig, run_layernorm_study
    from ..studies.layernorm.config import STATE_FILE
    from ..studies.layernorm.study import PREFIX
    from ..train.allocator import retain_freed_memory
    from .resume import experiment_directory, resume_hint

    if args.restate:  # every measurement is kept: a finished study's verdicts and report are redone
        import json

        if {k for k in given if k != "parts"} or args.quick or args.resume or not args.out:
            raise ValueError("--restate takes only --out DIR (a finished study) and --threads")
        if not json.loads((Path(args.out) / STATE_FILE).read_text()).get("complete"):
            raise ValueError(f"{args.out} is not finished: continue it with --resume, then --restate")
        args.resume = True
    config: Optional[LayerNormConfig] = None
    if not (args.resume and not ({k for k in given if k != "parts"} or args.quick)):
        config = config_from(given, args.quick)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    retain_freed_memory()
    directory = experiment_directory(args.out, args.resume, PREFIX, STATE_FILE, "a study")
    with resume_hint("study", directory, STATE_FILE):
        result = run_layernorm_study(
            config, out=directory, resume=args.resume, threads=args.threads, jobs=args.jobs, plan=args.plan
        )
    if result is None:
        return 0
    if result.quick:
        print("\nSMOKE RUN (--quick): checks that everything runs; no claim is judged")
    print(f"\nreport: {result.report_html}  (and {result.report_md.name}, figures in {result.directory}/)")
    print("verdict:")
    for line in result.verdict:
        print(f"  {line}")
    return 0
