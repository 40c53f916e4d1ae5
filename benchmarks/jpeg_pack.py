"""Pack an image-folder tree of small JPEGs into one file, and unpack it byte for byte.

CIFAR-10's JPEG copy (``../shared/data/cifar10-jpg``: 55,000 files, 51 MB) shares one
623-byte JPEG header across every file; only the entropy-coded scan differs (about 300 bytes
an image). The pack keeps the header once and the scans concatenated (17 MB), so the tree
travels to a machine that lacks it (a GPU box) and unpacks to the very same files.

    python benchmarks/jpeg_pack.py pack ../shared/data/cifar10-jpg cifar10-jpg.npz
    python benchmarks/jpeg_pack.py unpack cifar10-jpg.npz /tmp/cifar10-jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SOS = b"\xff\xda"   # JPEG start-of-scan marker: the header ends with its segment


def split_jpeg(data: bytes) -> tuple[bytes, bytes]:
    """(header up to and including the start-of-scan segment, the rest)."""
    i = data.find(SOS)
    if i < 0:
        raise ValueError("not a baseline JPEG (no start-of-scan marker)")
    end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return data[:end], data[end:]


def pack(root: Path, out: Path) -> None:
    files = sorted(p for p in root.rglob("*.jpg"))
    if not files:
        raise SystemExit(f"pack: no .jpg files under {root}")
    headers: dict[bytes, int] = {}
    index, scans = [], []
    for p in files:
        header, scan = split_jpeg(p.read_bytes())
        index.append(headers.setdefault(header, len(headers)))
        scans.append(scan)
    lengths = np.array([len(s) for s in scans], dtype=np.int64)
    header_bytes = b"".join(headers)
    header_lengths = np.array([len(h) for h in headers], dtype=np.int64)
    np.savez_compressed(out, names=np.array([str(p.relative_to(root)) for p in files]),
                        header_index=np.array(index, dtype=np.int32),
                        headers=np.frombuffer(header_bytes, np.uint8), header_lengths=header_lengths,
                        scans=np.frombuffer(b"".join(scans), np.uint8), offsets=np.cumsum(lengths) - lengths,
                        lengths=lengths)
    print(f"packed {len(files)} files ({len(headers)} distinct headers) into {out} "
          f"({out.stat().st_size / 1e6:.1f} MB)")


def unpack(pack_file: Path, dest: Path) -> None:
    z = np.load(pack_file)
    ends = np.cumsum(z["header_lengths"])
    headers = [z["headers"][e - n:e].tobytes() for e, n in zip(ends, z["header_lengths"])]
    scans = z["scans"]
    for name, h, off, n in zip(z["names"], z["header_index"], z["offsets"], z["lengths"]):
        path = dest / str(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(headers[h] + scans[off:off + n].tobytes())
    print(f"unpacked {len(z['names'])} files into {dest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    u = sub.add_parser("unpack")
    u.add_argument("pack", type=Path)
    u.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "pack":
        pack(args.root, args.out)
    else:
        unpack(args.pack, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
