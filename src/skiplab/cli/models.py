"""``skiplab models [PATTERN]``: the registered models, their parameters and the published counts."""

from __future__ import annotations

import argparse

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
        "models", help="list registered models with parameter counts",
        description="List the registered models with their parameter counts (default options) "
                    "and, where known, the published count and its source.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                   help="shell-style pattern on the names (default: '*')")
    p.add_argument("--markdown", action="store_true", help="print the Markdown table of docs/models.md")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..models.published import model_table, model_table_markdown
    rows = model_table(args.pattern)
    if not rows:
        raise ValueError(f"no registered model matches {args.pattern!r}; 'skiplab models' lists them all")
    if args.markdown:
        print(model_table_markdown(rows))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'model'.ljust(width)}  {'params':>12}  {'published':>12}  check  source")
    for r in rows:
        pub = f"{r['published']:,}" if r["published"] is not None else "-"
        print(f"{r['name'].ljust(width)}  {r['params']:>12,}  {pub:>12}  {r['check']:<5}  {r['source'] or ''}".rstrip())
    return 0
