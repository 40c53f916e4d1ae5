"""The product speaks of itself only: no README, docs page, config, source file, benchmark or
build file names the work history it came from ("session 7", "issue 13, §7"). Where history
matters a text gives the date or the commit."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what a history reference looks like
HISTORY = re.compile(r"session [0-9]|issue [0-9]|issue#|§ ?[0-9]+ of issue|\(issue", re.IGNORECASE)
#: what is checked: single files and whole trees
FILES = ("README.md", "Makefile")
TREES = ("docs", "configs", "src", "benchmarks", ".ci")
LEFT_OUT: tuple[Path, ...] = ()


def text_files() -> list[Path]:
    paths = [ROOT / f for f in FILES if (ROOT / f).is_file()]
    for tree in TREES:
        if (ROOT / tree).is_dir():
            paths += sorted(p for p in (ROOT / tree).rglob("*") if p.is_file())
    out = []
    for p in paths:
        if any(p.is_relative_to(d) for d in LEFT_OUT) or "__pycache__" in p.parts or ".egg-info" in str(p):
            continue
        head = p.read_bytes()[:4096]
        if b"\0" in head:  # binary: PNG, checkpoints, arrays
            continue
        out.append(p)
    return out


def test_the_checked_trees_are_found():
    files = {p.relative_to(ROOT).as_posix() for p in text_files()}
    assert "README.md" in files and "src/skiplab/evidence/thresholds.py" in files
    assert "src/skiplab/sar/codec/latent_file.py" in files and "src/skiplab/sar/weights/sar_ae_default.json" in files


def test_no_history_references():
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in text_files()
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert not hits, "these name their history; give the date or the commit instead:\n" + "\n".join(hits)


def test_the_pattern_finds_what_it_should():
    for text in ("set in session 7", "targets (issue 13, §7)", "issue 15 section 5", "see issue#12", "§7 of issue 13"):
        assert HISTORY.search(text), text
    for text in ("ONNX Runtime session", 'scope="session"', "set on 2026-12-02 (commit 92794ab)"):
        assert not HISTORY.search(text), text
