"""``skiplab models [PATTERN]``: the registered models, their parameters and the published counts."""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

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
    cache = CountCache.open()
    if cache.names is None:
        from ..models.registry import list_models
        cache.names = list_models()
    names = [n for n in cache.names if fnmatch.fnmatchcase(n, args.pattern)]
    if not names:
        raise ValueError(f"no registered model matches {args.pattern!r}; 'skiplab models' lists them all")
    rows = (cache.rows[n] if n in cache.rows else cache.add(counted(n)) for n in names)
    if args.markdown:
        from ..models.published import model_table_markdown
        print(model_table_markdown(list(rows)))
    else:
        width = max(len(n) for n in names)
        print(f"{'model'.ljust(width)}  {'params':>12}  {'published':>12}  check  source", flush=True)
        for r in rows:      # printed as counted: a first run builds every model once
            pub = f"{r['published']:,}" if r["published"] is not None else "-"
            print(f"{r['name'].ljust(width)}  {r['params']:>12,}  {pub:>12}  {r['check']:<5}  "
                  f"{r['source'] or ''}".rstrip(), flush=True)
    cache.save()
    return 0


def counted(name: str) -> dict:
    from ..models.published import model_row     # imports torch: only when a count is missing
    return model_row(name)


class CountCache:
    """The rows of ``skiplab models`` kept under ``$SKIPLAB_CACHE`` (default
    ``~/.cache/skiplab``) by a key of skiplab's own source files, the torch version and the
    installed plugins: counting builds every model (seconds each for the deepest), while a
    listing read back needs no torch at all. Any change of the code is another key; a cache
    that cannot be read or written is only a miss."""

    def __init__(self, path: Path, names: Optional[list[str]], rows: dict[str, dict]) -> None:
        self.path, self.names, self.rows, self.changed = path, names, rows, False

    @staticmethod
    def key() -> str:
        from importlib.metadata import PackageNotFoundError, entry_points, version
        from ..plugins import ENTRY_POINT_GROUP
        digest = hashlib.sha256()
        package = Path(__file__).resolve().parents[1]
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
        try:
            digest.update(version("torch").encode())
        except PackageNotFoundError:  # pragma: no cover - torch is a dependency
            pass
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            digest.update(f"{entry.name}={entry.value}".encode())
        return digest.hexdigest()[:24]

    @classmethod
    def open(cls) -> "CountCache":
        root = os.environ.get("SKIPLAB_CACHE")
        path = (Path(root).expanduser() if root else Path.home() / ".cache" / "skiplab") / "models" / f"{cls.key()}.json"
        try:
            stored = json.loads(path.read_text())
            return cls(path, stored.get("names"), dict(stored.get("rows") or {}))
        except (OSError, ValueError, AttributeError):
            return cls(path, None, {})

    def add(self, row: dict) -> dict:
        self.rows[row["name"]], self.changed = row, True
        return row

    def save(self) -> None:
        if not (self.changed or not self.path.exists()):
            return
        from ..atomic import write_json
        try:
            write_json(self.path, {"names": self.names, "rows": self.rows})
        except OSError:
            pass        # a read-only home: the next run counts again
