"""The JSON sidecar (skiplab.deploy.sidecar): written atomically with the usual file mode, and
read back as written. Needs no deploy extra."""

from __future__ import annotations

import os

from skiplab.deploy.sidecar import read_sidecar, sidecar_path, write_sidecar
from skiplab.deploy.source import SourceMeta


def test_sidecar_round_trip_with_the_usual_file_mode(tmp_path):
    meta = SourceMeta(
        model="cifar_resnet20",
        input_size=(3, 32, 32),
        num_classes=10,
        classes=[str(i) for i in range(10)],
        mean=[0.5] * 3,
        std=[0.25] * 3,
    )
    path = write_sidecar(tmp_path / "r20.onnx", meta, format="onnx", parity=1e-7)
    assert path == sidecar_path(tmp_path / "r20.onnx") == tmp_path / "r20.onnx.json"
    record = read_sidecar(tmp_path / "r20.onnx")
    assert record["format"] == "onnx" and record["classes"][3] == "3"
    assert record["input"]["shape"] == ["batch", 3, 32, 32]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["r20.onnx.json"]  # no temporary left
