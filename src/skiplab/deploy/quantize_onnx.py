"""ONNX Runtime static int8 quantisation of an fp32 ``.onnx`` export: QDQ format, per-channel
int8 weights, uint8 activations (U8S8), activation ranges from the calibration images by the
99.999th percentile of a histogram (Wu et al. 2020, sec. 4.2 and Table 3), min-max or entropy
(the backend ``onnx`` of :mod:`skiplab.deploy.quantize`)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Optional, Union

import torch

from .calibration import Calibration
from .extras import quiet, require

#: ONNX Runtime's activation calibration rules (``--onnx-calibration``)
ONNX_CALIBRATIONS = ("percentile", "minmax", "entropy")


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over the calibration batches."""

    def __init__(self, name: str, batches: list[torch.Tensor]) -> None:
        self._items = iter([{name: b.contiguous().numpy()} for b in batches])

    def get_next(self) -> Optional[dict]:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - unused by MinMax
        pass


def quantize_onnx(
    fp32_path: Union[str, Path],
    out: Union[str, Path],
    calibration: Calibration,
    *,
    per_channel: bool = True,
    method: str = "percentile",
) -> Path:
    """ONNX Runtime ``quantize_static`` of an fp32 ``.onnx`` (QDQ, U8S8, activation ranges
    by ``method``: percentile 99.999, minmax or entropy), after ORT's pre-processing (graph
    optimisation)."""
    require("onnxruntime", "int8 quantisation (ONNX Runtime)")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    if method not in ONNX_CALIBRATIONS:
        raise ValueError(f"ONNX calibration must be one of {', '.join(ONNX_CALIBRATIONS)}; found {method!r}")
    rule = {
        "percentile": dict(calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.999}),
        "minmax": dict(calibrate_method=CalibrationMethod.MinMax),
        "entropy": dict(calibrate_method=CalibrationMethod.Entropy),
    }[method]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        # ORT prints its histogram steps to stdout and warns on the root logger for every
        # rank-1 weight it leaves per-tensor (BN after a pool): neither is the user's concern
        with quiet("root"), contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(pre),
                str(out),
                _Reader("x", calibration.batches),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                **rule,
            )
    return out
