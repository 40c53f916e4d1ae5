"""``skiplab ablate``: controlled comparisons of architecture variants, with a report.

``skiplab ablate autoencoder``: the residual-placement ablation of the SAR autoencoder."""

from __future__ import annotations

import argparse
import time

EXAMPLE = """\
examples:
  skiplab ablate autoencoder                          # synthetic SAR, 3 seeds, about 12 minutes (budget 14)
  skiplab ablate autoencoder --data scenes/ --tile 128 --budget 30 --seeds 3
  skiplab ablate autoencoder --eval-data ../shared/data/sar-real --eval-tile 256
  skiplab ablate autoencoder --budget 300steps --latent 32
  skiplab ablate autoencoder --resume --out runs/ablate-ae-20250101-120000
  skiplab ablate autoencoder --quick                  # seconds: a smoke run, no verdict
  skiplab ablate autoencoder --data ../shared/data/sar-real --holdout site \\
      --variants sar_codec_plain,sar_codec_all --budget 1000steps --out runs/codec-evidence

Trains the SAR codecs sar_codec_plain (no residual connection), sar_codec_bottleneck
(residual blocks at the coarsest level), sar_codec_all (everywhere) and
sar_codec_bottleneck_cbam (bottleneck + CBAM) -- autoencoders with the latent quantiser in the
loop (uniform noise at a bit depth drawn from --train-bits per batch) and a factorised Laplace
prior whose rate enters the loss with --rate-weight (loss = MSE + lambda * bpp) -- or the
unquantised sar_ae_* (--variants), on the same tiles with the same recipe, steps and seeds.
Each best.pt is evaluated on held-out tiles through its entropy-coded latent, and
report.html (self-contained), report.md, curves.png and grid.png give a table (parameters,
MACs, train time, PSNR, SSIM, ENL, ratio median, measured bpp), training curves, input /
reconstruction / error maps, and which variant wins by how much, as a paired PSNR difference
with a t interval over seeds (tiles' error added) -- or "no significant difference" when the
interval contains 0. A variant within 0.5 dB of a constant image "did not train" and is not
ranked; no verdict in a --quick smoke run, with fewer than 3 seeds, or when the best variant
is within 1 dB of a constant image.

Without --data: synthetic speckled scenes (--looks). With --data: tiles of the rasters,
10% held out for the test and 5% for validation. --eval-data: also test on other scenes
(e.g. real ones, --eval-tile px tiles), normalised with the training radiometry -- a second
table, verdict and grid in the report.

--holdout site: the codec evidence. Leave-one-site-out folds over --data (scenes of one site
= one file name without its _chN/_hh suffix): train on the other sites' scenes + --synthetic
scenes, each normalised per scene, and code every scene of the held-out site at each of
--rd-bits through the real latent file; on the same scenes, JPEG 2000 and JPEG rate-matched
to the file's measured bpp and average pooling at the latent's value count. report.md and
rd.png: the rate-distortion table and plot, paired intervals over seeds and scenes, and
whether the best variant beats JPEG 2000 at >= 2 of the rates.

Each run is runs/<variant>[-f<fold>]-s<seed>/ under the output directory (train.yaml,
config.yaml, metrics.csv, steps.csv, checkpoints/best.pt): use the winner directly with
`skiplab reconstruct` or `skiplab encode`. It runs on the same experiment runner as `skiplab
study`: --jobs N trains N runs at a time, and `python -m skiplab.studies.worker DIR RUN`
trains one run elsewhere.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ablate",
        help="controlled ablations with a report (autoencoder)",
        description="Controlled comparisons of architecture variants, with a report.",
    )
    sub = p.add_subparsers(dest="ablation", metavar="ABLATION", required=True)
    a = sub.add_parser(
        "autoencoder",
        help="where do residual connections help a SAR autoencoder?",
        description="Train the four residual placements of the SAR autoencoder with one recipe and budget, "
        "over several seeds, and report which is best and whether the difference is real.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="training rasters: directories and/or files (.tif/.tiff, .png, .npy); default: synthetic speckled scenes",
    )
    a.add_argument(
        "--eval-data",
        nargs="+",
        metavar="PATH",
        help="also evaluate on these scenes (e.g. real ones): a second table and verdict",
    )
    a.add_argument("--looks", type=float, help="looks of the synthetic speckle (default 2)")
    a.add_argument("--latent", type=int, metavar="C", help="latent channels (default 16: 16x compression)")
    a.add_argument("--widths", metavar="W,W,W,W", help="channels of the four levels (default 16,32,64,128)")
    a.add_argument("--tile", type=int, metavar="T", help="training tile side, multiple of 16 (default 64)")
    a.add_argument("--eval-tile", type=int, metavar="T", help="tile side for --eval-data (default: --tile)")
    a.add_argument(
        "--budget",
        metavar="B",
        help="minutes for all training runs together (default 14), turned into one common number "
        "of steps by timing each variant; or steps per run (300steps)",
    )
    a.add_argument("--seeds", type=int, metavar="N", help="seeds per variant, >= 2 (default 3; a verdict needs >= 3)")
    a.add_argument("--batch-size", type=int, metavar="B", help="batch size (default 16)")
    a.add_argument("--lr", type=float, help="AdamW learning rate (default 0.002)")
    a.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="training precision (default auto: bf16 where the CPU has it); evaluation is fp32",
    )
    a.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs trained at once, each in its own worker process (default 1)",
    )
    a.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="torch CPU threads per run (default 0: the cores split between the jobs; 1 on a busy machine)",
    )
    a.add_argument("--out", metavar="DIR", help="output directory (default runs/ablate-ae-<timestamp>)")
    a.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted ablation (--out DIR, or the latest unfinished one): finished "
        "runs are skipped, an unfinished one continues from its last.pt; options given again "
        "must be the same)",
    )
    a.add_argument("--quick", action="store_true", help="tiny smoke run: 32 px tiles, tiny widths, 3 steps")
    c = a.add_argument_group("codec (sar_codec_* variants) and held-out evidence")
    c.add_argument(
        "--variants",
        metavar="V,V",
        help="variants to train (default: the four sar_codec_*; sar_ae_* are the unquantised ones)",
    )
    c.add_argument(
        "--train-bits",
        metavar="LO,HI",
        help="bit depths of the latent drawn per training batch (default 2,6; one value: fixed)",
    )
    c.add_argument(
        "--eval-bits",
        type=int,
        metavar="B",
        help="bit depth of validation and of the test table without --holdout (default 4)",
    )
    c.add_argument(
        "--rd-bits", metavar="B,B,B", help="bits per latent value of the rate-distortion evaluation (default 2,4,6)"
    )
    c.add_argument(
        "--rate-weight",
        type=float,
        metavar="LAMBDA",
        help="lambda of loss = D + lambda * R, R in bits per pixel under the factorised prior "
        "(default 0.002; 0: no rate term)",
    )
    c.add_argument(
        "--loss",
        metavar="JSON",
        help='loss terms, e.g. \'{"l1": 1, "ms_ssim": 0.2}\' (default: {"mse": 1}, the distortion PSNR measures)',
    )
    c.add_argument(
        "--holdout",
        choices=("site",),
        help="leave-one-site-out cross-validation over --data: train on the other sites' scenes "
        "+ synthetic ones, code the held-out site's scenes against JPEG 2000 / JPEG at the "
        "measured bpp and avg-pool at the latent's value count (report + rd.png)",
    )
    c.add_argument("--synthetic", type=int, metavar="N", help="synthetic training scenes per fold (default 8)")
    a.set_defaults(run=run)


OPTIONS = (
    "data",
    "eval_data",
    "looks",
    "latent",
    "tile",
    "eval_tile",
    "budget",
    "seeds",
    "batch_size",
    "lr",
    "precision",
    "eval_bits",
    "rate_weight",
    "holdout",
    "synthetic",
)


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers; found {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from ..sar.ablation.experiment import run_ablation
    from ..sar.ablation.config import STATE_FILE, AblationConfig
    from ..train.allocator import retain_freed_memory
    from .resume import experiment_directory, resume_hint

    given = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    if args.widths is not None:
        given["widths"] = _ints(args.widths, "widths")
    if args.rd_bits is not None:
        given["rd_bits"] = _ints(args.rd_bits, "rd-bits")
    if args.train_bits is not None:
        bits = _ints(args.train_bits, "train-bits")
        given["train_bits"] = (bits[0], bits[-1])
    if args.variants is not None:
        given["variants"] = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if args.loss is not None:
        import json

        try:
            given["loss"] = json.loads(args.loss)
        except ValueError:
            raise ValueError(f"--loss must be a JSON object such as '{{\"mse\": 1}}'; found {args.loss!r}") from None
    # --resume alone keeps the ablation's own options; given again, they must be the same
    config = None if args.resume and not (given or args.quick) else AblationConfig.create(quick=args.quick, **given)
    start = time.perf_counter()
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    retain_freed_memory()  # a command that trains: as `skiplab train` (retain_memory)
    directory = experiment_directory(args.out, args.resume, "ablate-ae", STATE_FILE, "an ablation")
    with resume_hint("ablate autoencoder", directory, STATE_FILE):
        result = run_ablation(config, out=directory, resume=args.resume, threads=args.threads, jobs=args.jobs)
    if args.quick:
        print("\nSMOKE RUN (--quick): checks that everything runs; no variant is judged")
    figures = "rd.png" if (result.directory / "rd.png").is_file() else "curves.png, grid.png"
    print(f"\nreport: {result.report_html}  (and {result.report_md.name}, {figures})")
    print(
        f"runs: {result.directory}/runs/<variant>{'-f<fold>' if 'rd' in figures else ''}-s<seed>/checkpoints/best.pt "
        f"(wall-clock {time.perf_counter() - start:.0f} s)"
    )
    print("verdict:")
    for line in result.verdict:
        print(f"  {line.replace('**', '').replace('`', '')}")
    extra = result.extra_verdict
    if extra:
        print("on the other scenes (--eval-data):")
        for line in extra:
            print(f"  {line.replace('**', '').replace('`', '')}")
    return 0
