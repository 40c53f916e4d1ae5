"""The package layering of skiplab, checked on the source with ``ast``.

Imports run one way: blocks <- models <- data <- train <- analysis <- evidence <- studies /
deploy / sar <- cli (DESIGN.md). Each module's imports -- top-level and inside functions alike -- must
name only packages its own package may use (:data:`ALLOWED`), never another package's
private (``_underscore``) names; the core never imports the SAR package; no module grows
past :data:`MAX_LINES` lines (the exceptions below hold today's count and may only shrink).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "skiplab"
CORE = ("blocks", "models", "data", "train", "analysis")

# package (or top-level module) -> the skiplab packages it may import, besides itself.
# leaf utilities that import nothing of skiplab (atomic writes, safe torch.load, the error
# types, the plugin list): usable by all
_UTILITIES = {"atomic", "safe_load", "errors", "plugins", "writable"}
# the one loader from a file to a model sits on models (and is used by everything above)
_BELOW_TRAIN = {"blocks", "models", "data", "trained"} | _UTILITIES
ALLOWED: dict[str, set[str]] = {
    "plugins": set(),  # names domain packages by string; imports none of skiplab
    "atomic": set(),
    "safe_load": set(),
    "errors": set(),
    "writable": {"errors"},  # outputs checked before the work, write failures in one line
    "blocks": set(),
    "models": {"blocks"} | _UTILITIES,
    "trained": {"blocks", "models", "__init__"} | _UTILITIES,
    "data": {"blocks", "models"} | _UTILITIES,
    "train": _BELOW_TRAIN,
    "analysis": _BELOW_TRAIN | {"train"},
    "summary": {"blocks", "models"} | _UTILITIES,
    # the evidence toolkit (intervals, thresholds, report document, figures): below every report
    "evidence": _BELOW_TRAIN | {"train", "analysis"},
    "studies": _BELOW_TRAIN | {"train", "analysis", "summary", "evidence"},
    "deploy": _BELOW_TRAIN | {"train", "analysis", "summary", "evidence"},
    "sar": _BELOW_TRAIN | {"train", "analysis", "summary", "evidence", "studies", "deploy"},
    "cli": _BELOW_TRAIN | {"train", "analysis", "summary", "evidence", "studies", "deploy", "sar", "__init__"},
    # the public facade: its names are imported lazily, on first use (PEP 562)
    "__init__": {"models", "trained", "train", "errors"},
    "__main__": {"cli"},
}

MAX_LINES = 400
# Modules over MAX_LINES today, with their line count: they may shrink, never grow.
LONG_MODULES: dict[str, int] = {}


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(module: str) -> str:
    """``skiplab.data.load`` -> ``data``; ``skiplab.summary`` -> ``summary``; ``skiplab`` ->
    ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every skiplab import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    base = here.split(".") if path.name == "__init__.py" else here.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "skiplab":
                    found.append((node.lineno, alias.name, []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - node.level + 1]
                target = ".".join(root + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "skiplab":
                continue
            names = [a.name for a in node.names]
            if target == "skiplab" or (node.level and not node.module):
                # ``from . import sar`` / ``from .. import __version__``: the names are modules
                # or attributes of the package itself
                for name in names:
                    sub = f"{target}.{name}"
                    found.append(
                        (
                            node.lineno,
                            sub
                            if (SRC.parent / sub.replace(".", "/")).exists()
                            or (SRC.parent / (sub.replace(".", "/") + ".py")).exists()
                            else target,
                            [name],
                        )
                    )
                continue
            found.append((node.lineno, target, names))
    return found


def rel(path: Path) -> str:
    return str(path.relative_to(SRC.parent))


def test_the_table_covers_every_package():
    packages = {package_of(module_name(p)) for p in modules()}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to ALLOWED"


def test_imports_run_one_way():
    bad = []
    for path in modules():
        mine = package_of(module_name(path))
        for line, target, _ in imports(path):
            theirs = package_of(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                bad.append(f"{rel(path)}:{line}: {mine} imports {target} ({theirs} may not be imported by {mine})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_private_names_across_packages():
    bad = []
    for path in modules():
        mine = package_of(module_name(path))
        for line, target, names in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
            if private and package_of(target) != mine:
                bad.append(f"{rel(path)}:{line}: {', '.join(private)} from {target}")
    assert not bad, "private names imported from another package:\n" + "\n".join(bad)


def test_core_does_not_import_sar():
    bad = [
        f"{rel(p)}:{line}: {target}"
        for p in modules()
        if package_of(module_name(p)) in CORE
        for line, target, _ in imports(p)
        if package_of(target) == "sar"
    ]
    assert not bad, "core packages importing skiplab.sar:\n" + "\n".join(bad)


def test_no_module_over_the_line_limit():
    over, grown = [], []
    for path in modules():
        lines = len(path.read_text().splitlines())
        limit = LONG_MODULES.get(rel(path), MAX_LINES)
        if lines > limit:
            (grown if rel(path) in LONG_MODULES else over).append(f"{rel(path)}: {lines} lines")
    assert not over and not grown, f"modules over {MAX_LINES} lines: {over}; listed long modules that grew: {grown}"


def renames_and_temp_files(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls of ``os.replace``/``os.rename``/``tempfile.mkstemp`` (the makings of a hand-rolled
    atomic write) in a parsed module."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            call = f"{node.func.value.id}.{node.func.attr}"
            if call in ("os.replace", "os.rename", "tempfile.mkstemp", "tempfile.NamedTemporaryFile"):
                found.append((node.lineno, call))
    return found


def test_one_atomic_writer():
    """Files are replaced atomically in one place, ``skiplab.atomic`` (fsync, the usual file
    mode, cleanup on error); a second hand-rolled copy wrote 0600 sidecars."""
    bad = [
        f"{rel(p)}:{line}: {call}"
        for p in modules()
        if rel(p) != "skiplab/atomic.py"
        for line, call in renames_and_temp_files(ast.parse(p.read_text()))
    ]
    assert not bad, "atomic writes outside skiplab.atomic:\n" + "\n".join(bad)
    assert renames_and_temp_files(ast.parse("import os\nos.replace(a, b)\n")) == [(2, "os.replace")]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ...sar.raster.io import read_raster\n", "skiplab.sar.raster.io"),
        ("from ... import sar\n", "skiplab.sar"),
        ("from ..loop import Trainer\n", "skiplab.train.loop"),
        ("import skiplab.sar.training.tiles\n", "skiplab.sar.training.tiles"),
        ("def f():\n    from ...sar import load_sar\n", "skiplab.sar"),
    ],
)
def test_the_checker_sees_imports(monkeypatch, source, expected):
    """The parser resolves relative, absolute and function-level imports (so the checks above
    can fail), here as if in skiplab/train/tasks/base.py."""
    path = SRC / "train" / "tasks" / "base.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert [target for _, target, _ in imports(path)] == [expected]


# -- one evidence toolkit ----------------------------------------------------------------------
REPORTERS = ("studies", "deploy", "sar")


def own_intervals(source: str) -> list[tuple[int, str]]:
    """The makings of a hand-rolled interval in a module's source: a normal quantile typed in
    (1.96, 1.645, 2.576), a t table (a list of Student quantiles such as 12.706, 4.303), a
    quantile of bootstrap draws, an inverse normal CDF, or a bootstrap resampling loop."""
    tree = ast.parse(source)
    found = []
    quantiles = {1.96, 1.645, 2.576, 12.706, 4.303, 3.182, 2.776}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and node.value in quantiles:
            found.append((node.lineno, f"the quantile {node.value} typed in"))
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            if name in ("inv_cdf", "ppf", "icdf", "NormalDist"):
                found.append((node.lineno, f"{name}(): a distribution quantile outside skiplab.evidence"))
            # a data quantile (a radiometric range, a colour scale) is fine; a quantile of
            # resampled statistics is a percentile interval
            first = node.args[0].id.lower() if node.args and isinstance(node.args[0], ast.Name) else ""
            if name in ("quantile", "percentile") and any(w in first for w in ("draw", "boot", "resampl")):
                found.append((node.lineno, f"{base}.{name}({first}): a percentile interval outside skiplab.evidence"))
        elif isinstance(node, ast.Name) and "bootstrap" in node.id.lower():
            found.append((node.lineno, f"{node.id}: a bootstrap outside skiplab.evidence"))
        elif isinstance(node, ast.FunctionDef) and ("bootstrap" in node.name or node.name.endswith("_ci")):
            found.append((node.lineno, f"def {node.name}: an interval outside skiplab.evidence"))
    return found


def test_reports_define_no_interval_of_their_own():
    """Every interval in the studies, the deployment reports and the SAR package comes from
    skiplab.evidence (one method whose coverage is checked by simulation)."""
    bad = [
        f"{rel(p)}:{line}: {what}"
        for p in modules()
        if package_of(module_name(p)) in REPORTERS
        for line, what in own_intervals(p.read_text())
    ]
    assert not bad, "intervals computed outside skiplab.evidence:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "half = 1.96 * se\n",
        "T = [12.706, 4.303, 3.182]\n",
        "lo, hi = np.quantile(draws, [0.025, 0.975])\n",
        "from statistics import NormalDist\nz = NormalDist().inv_cdf(0.975)\n",
        "def bootstrap_mean(x):\n    return x\n",
    ],
)
def test_the_interval_checker_sees_hand_rolled_intervals(source):
    assert own_intervals(source)


def test_evidence_imports_nothing_above_it():
    bad = [
        f"{rel(p)}:{line}: {target}"
        for p in modules()
        if package_of(module_name(p)) == "evidence"
        for line, target, _ in imports(p)
        if package_of(target) in ("studies", "deploy", "sar", "cli")
    ]
    assert not bad, "skiplab.evidence importing a package above it:\n" + "\n".join(bad)
    assert (SRC / "evidence" / "thresholds.py").is_file() and not (SRC / "studies" / "thresholds.py").exists()
