"""``skiplab data``: download CIFAR, describe a dataset, manage the decoded-image cache."""

from __future__ import annotations

import argparse
import json
import time

EXAMPLE = """\
examples:
  skiplab data download cifar10 ~/data                    # official archive, MD5-checked
  skiplab data download cifar100 ~/data --source file:///mnt/mirror/cifar-100-python.tar.gz
  skiplab data info cifar10:../shared/data/cifar10-jpg     # classes, counts, mean/std
  skiplab data info synthetic:shapes-2k --val-size 200
  skiplab data info synthetic:patterns                    # the study's 16x16 texture task
  skiplab data cache list                                 # decoded image folders on disk
  skiplab data cache clear

--data specs: cifar10:PATH, cifar100:PATH (official python or binary batches, the .tar.gz,
or train/ + test/ image folders), folder:PATH (PATH/CLASS/*.jpg or PATH/train + PATH/test),
synthetic or synthetic:NAME (e.g. synthetic:shapes-2k,seed=1; NAME is shapes, the
10-class 32x32 shape task, or patterns, the 8-class 16x16 texture task, each with an
optional size -N or -Nk).

download extracts only regular files and folders: an archive holding a link (symbolic or
hard), a device or FIFO, an absolute path or '..' is refused whole, before anything is
written.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "data",
        help="download CIFAR, describe datasets, manage the image cache",
        description="Datasets for skiplab: fetch the official CIFAR archives (MD5-verified, "
        "safely extracted), print what a --data spec holds, and list or clear the "
        "cache of decoded image folders.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    d = sub.add_parser(
        "download",
        help="fetch, verify and extract CIFAR-10/100",
        description="Fetch the official CIFAR archive (or --source), verify its "
        "MD5 and extract it into DIR, refusing members that escape DIR.",
    )
    d.add_argument("dataset", choices=("cifar10", "cifar100"))
    d.add_argument("dir", metavar="DIR", help="folder to put the archive and its batches in")
    d.add_argument(
        "--source",
        metavar="URL|PATH",
        help="where to fetch from (default: the official URL); file:// URLs and local paths work offline",
    )
    d.add_argument(
        "--format",
        dest="fmt",
        choices=("python", "binary"),
        default="python",
        help="which official version (default: python)",
    )
    d.add_argument("--md5", metavar="HEX", help="expected MD5 (default: the official one)")
    d.add_argument("--no-extract", action="store_true", help="only fetch and verify")
    d.set_defaults(run=run_download)

    i = sub.add_parser(
        "info",
        help="classes, counts and statistics of a --data spec",
        description="Load a dataset and print its splits, classes, per-class "
        "counts, image size and the train split's mean/std.",
    )
    i.add_argument("spec", metavar="SPEC", help="e.g. cifar10:PATH, folder:PATH, synthetic")
    i.add_argument("--val-size", type=int, default=0, metavar="N", help="hold N training images out as the val split")
    i.add_argument("--seed", type=int, default=0, help="seed of the train/val split")
    i.add_argument("--skip-bad", action="store_true", help="skip (and count) images that cannot be decoded")
    i.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $SKIPLAB_CACHE or ~/.cache/skiplab)")
    i.add_argument("--json", action="store_true", help="print as JSON")
    i.set_defaults(run=run_info)

    c = sub.add_parser(
        "cache",
        help="list or clear decoded datasets on disk",
        description="The cache holds decoded image folders as uint8 tensors, keyed by the files' content.",
    )
    c.add_argument("action", choices=("list", "clear"))
    c.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $SKIPLAB_CACHE or ~/.cache/skiplab)")
    c.set_defaults(run=run_cache)
    return p


def run_download(args: argparse.Namespace) -> int:
    from ..data.download import copy_progress_bar, download

    out = download(
        args.dataset,
        args.dir,
        source=args.source,
        fmt=args.fmt,
        md5=args.md5,
        extract=not args.no_extract,
        progress=copy_progress_bar(args.dataset),
    )
    print(f"{args.dataset}: {out}")
    return 0


def describe(spec: str, val_size: int = 0, seed: int = 0, skip_bad: bool = False, cache_dir: str | None = None) -> dict:
    """Splits, classes, counts and statistics of ``spec`` as a plain dict."""
    from ..data import load_dataset

    start = time.perf_counter()
    splits = ["train"] + (["val"] if val_size else []) + ["test"]
    info: dict = {"spec": spec, "splits": {}}
    for split in splits:
        try:
            ds = load_dataset(spec, split, val_size=val_size, seed=seed, skip_bad=skip_bad, cache_dir=cache_dir)
        except ValueError as err:
            if split == "test" and "no test split" in str(err):
                continue
            raise
        info.setdefault("name", ds.name.rsplit("/", 1)[0])
        info.setdefault("classes", ds.classes)
        info.setdefault("image_shape", list(ds.images.shape[1:]))
        info.setdefault("mean", [round(v, 4) for v in ds.mean])
        info.setdefault("std", [round(v, 4) for v in ds.std])
        info["splits"][split] = {"images": len(ds), "per_class": ds.class_counts(), "skipped": ds.skipped}
    info["seconds"] = round(time.perf_counter() - start, 2)
    return info


def _format(info: dict) -> str:
    lines = [
        f"{info['name']}  ({info['spec']})",
        f"  images     {'x'.join(map(str, info['image_shape']))} (C x H x W), uint8",
        f"  classes    {len(info['classes'])}: {', '.join(info['classes'][:12])}"
        + (" ..." if len(info["classes"]) > 12 else ""),
        f"  mean       {info['mean']}   (train split, [0, 1] units)",
        f"  std        {info['std']}",
    ]
    for split, s in info["splits"].items():
        counts = s["per_class"]
        spread = f"{min(counts)}-{max(counts)} per class"
        skipped = f", {s['skipped']} undecodable skipped" if s["skipped"] else ""
        lines.append(f"  {split:<10} {s['images']} images ({spread}{skipped})")
    lines.append(f"  loaded in {info['seconds']} s")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    info = describe(args.spec, args.val_size, args.seed, args.skip_bad, args.cache_dir)
    print(json.dumps(info, indent=2) if args.json else _format(info))
    return 0


def run_cache(args: argparse.Namespace) -> int:
    from ..data.cache import cache_entries, cache_root, clear_cache

    root = cache_root(args.cache_dir)
    if args.action == "clear":
        print(f"removed {clear_cache(args.cache_dir)} cache file(s) from {root}")
        return 0
    entries = cache_entries(args.cache_dir)
    for path, size in entries:
        print(f"{size / 2**20:9.1f} MiB  {path}")
    print(f"{len(entries)} file(s), {sum(s for _, s in entries) / 2**20:.1f} MiB in {root}")
    return 0
