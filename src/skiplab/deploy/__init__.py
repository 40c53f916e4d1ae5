"""skiplab.deploy: shipping a trained network -- export (ONNX, torch.export), BN folding,
int8 quantisation (torchao PT2E, ONNX Runtime; quantisation-aware training on PT2E) and
``skiplab bench``. See docs/deploy.md.

The heavy stack is the optional extra ``skiplab[deploy]``; these modules import without it
and say which extra to install when a function needs it."""

from .bench import bench
from .calibration import calibration_data
from .export import ExportResult, export, export_onnx, export_pt2
from .extras import MissingExtraError
from .fold import FoldReport, fold_batchnorm
from .qat import QATOptions, quantize_qat_pt2e
from .quantize import quantize_pt2e
from .quantize_onnx import quantize_onnx
from .quantize_report import quantize_checkpoint
from .runtime import evaluate_artifact, load_artifact, load_runnable
from .source import ModelSource, SourceMeta, load_source

__all__ = [
    "ExportResult",
    "FoldReport",
    "MissingExtraError",
    "ModelSource",
    "QATOptions",
    "SourceMeta",
    "bench",
    "calibration_data",
    "evaluate_artifact",
    "export",
    "export_onnx",
    "export_pt2",
    "fold_batchnorm",
    "load_artifact",
    "load_runnable",
    "load_source",
    "quantize_checkpoint",
    "quantize_onnx",
    "quantize_pt2e",
    "quantize_qat_pt2e",
]
