"""``skiplab models [PATTERN]``: the registered models, their parameters and the published counts."""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path
from typing import Iterator

EXAMPLE = """\
examples:
  skiplab models                       # every model
  skiplab models 'cifar_*'             # the CIFAR models
  skiplab models --markdown > docs/models.md

"ok" means our count is within the published tolerance: exact for torchvision's
models, max(1%, half a unit of the last printed digit) for the papers' rounded figures.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "models",
        help="list registered models with parameter counts",
        description="List the registered models with their parameter counts (default options) "
        "and, where known, the published count and its source.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "pattern", nargs="?", default="*", metavar="PATTERN", help="shell-style pattern on the names (default: '*')"
    )
    p.add_argument("--markdown", action="store_true", help="print the Markdown table of docs/models.md")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    rows = ModelListing(args.pattern)
    if args.markdown:
        from ..models.published import model_table_markdown

        print(model_table_markdown(list(rows)))
    else:
        print(f"{'model'.ljust(rows.width)}  {'params':>12}  {'published':>12}  check  source", flush=True)
        for r in rows:
            pub = f"{r['published']:,}" if r["published"] is not None else "-"
            print(
                f"{r['name'].ljust(rows.width)}  {r['params']:>12,}  {pub:>12}  {r['check']:<5}  "
                f"{r['source'] or ''}".rstrip(),
                flush=True,
            )
    return 0


# skiplab.models.published.MODEL_TABLE, found by path: importing skiplab.models imports torch
MODEL_TABLE = Path(__file__).resolve().parents[1] / "models" / "model_table.json"


class ModelListing:
    """The rows of the models matching ``pattern``, in name order: skiplab's own read from the
    generated table ``skiplab/models/model_table.json`` (no torch, no model built; a test
    rebuilds every model and fails when the table is stale), a third-party plugin's counted
    when listed (its models are known only once it is imported)."""

    def __init__(self, pattern: str) -> None:
        try:
            self.table = {row["name"]: row for row in json.loads(MODEL_TABLE.read_text())["rows"]}
        except (OSError, ValueError, KeyError):  # not installed with the package: count all
            self.table = {}
        from importlib.metadata import entry_points  # (not for --help: 0.1-0.2 s)

        from ..plugins import ENTRY_POINT_GROUP

        names = sorted(self.table)
        if not self.table or entry_points(group=ENTRY_POINT_GROUP):
            from ..models.registry import list_models

            names = list_models()
        self.names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not self.names:
            raise ValueError(f"no registered model matches {pattern!r}; 'skiplab models' lists them all")
        self.width = max(len(n) for n in self.names)

    def __iter__(self) -> Iterator[dict]:
        for name in self.names:  # printed as counted where a row must be counted
            yield self.table[name] if name in self.table else counted(name)


def counted(name: str) -> dict:
    from ..models.published import model_row  # imports torch: only for a plugin's model

    return model_row(name)
