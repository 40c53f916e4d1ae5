"""Running what export and quantisation write: an ``.onnx`` file in ONNX Runtime or a saved
``torch.export`` program (``.pt2``, fp32 or PT2E int8), as an ``nn.Module`` with the
:class:`~skiplab.deploy.source.SourceMeta` of its sidecar -- so ``skiplab eval`` and
``skiplab bench`` take an artifact wherever they take a checkpoint."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Optional, Union

import torch
from torch import nn

from .extras import import_torchao_pt2e, quiet, require, has
from .sidecar import read_sidecar
from .source import ModelSource, SourceMeta, load_source

ARTIFACT_SUFFIXES = (".onnx", ".pt2")


def is_artifact(path: Union[str, Path]) -> bool:
    return Path(path).suffix in ARTIFACT_SUFFIXES


def ort_session(path: Union[str, Path], threads: int = 0):
    """An ONNX Runtime CPU session with every graph optimisation on (``threads`` 0: ORT's
    default, one per core)."""
    ort = require("onnxruntime", "running an .onnx file")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtModule(nn.Module):
    """An ONNX Runtime session behind an ``nn.Module`` forward (float32 NCHW in and out)."""

    def __init__(self, path: Union[str, Path], threads: int = 0) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = ort_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().float().contiguous().cpu().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


class ProgramModule(nn.Module):
    """A reloaded ``torch.export`` program, run without autograd (and its input made
    contiguous NCHW: an int8 program was traced on that layout)."""

    def __init__(self, path: Union[str, Path]) -> None:
        super().__init__()
        self.path = Path(path)
        if has("torchao"):
            import_torchao_pt2e()  # registers the quantized ops an int8 program calls
        try:
            with quiet("torch"):
                self.program = torch.export.load(str(path))
        except Exception as err:
            raise ValueError(
                f"cannot load torch.export program {path}: "
                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from err
        self.module_ = self.program.module()

    def train(self, mode: bool = True) -> "ProgramModule":
        """Only inference: a program's module refuses ``train()``/``eval()``, so they stop here."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module_(x.contiguous())


def load_artifact(path: Union[str, Path]) -> ModelSource:
    """An exported or quantised file and its sidecar's metadata as a :class:`ModelSource`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    sidecar = read_sidecar(path)
    if sidecar is None:
        raise ValueError(
            f"{path} has no sidecar {path.name}.json: expected a file written by skiplab export or skiplab quantize"
        )
    module: nn.Module = OrtModule(path) if path.suffix == ".onnx" else ProgramModule(path)
    return ModelSource(module.eval(), SourceMeta.from_dict(sidecar.get("meta") or {}))


def load_runnable(name_or_path: Union[str, Path], **kwargs) -> ModelSource:
    """:func:`load_artifact` for ``.onnx``/``.pt2`` files, :func:`load_source` otherwise."""
    if is_artifact(name_or_path):
        return load_artifact(name_or_path)
    return load_source(name_or_path, **kwargs)


def evaluate_artifact(
    path: Union[str, Path],
    data: Optional[str] = None,
    split: Optional[str] = None,
    *,
    batch_size: Optional[int] = None,
    tta_flip: Optional[bool] = None,
    tta_translate: Optional[bool] = None,
    skip_bad: bool = False,
) -> dict:
    """``skiplab eval`` of an artifact: the task's metrics on ``split`` of ``data`` (default:
    the data its checkpoint was trained on), inputs normalised as in training. Arguments left
    at None take the recorded run's values, as :func:`skiplab.train.evaluate_checkpoint` does
    (its evaluation split, batch size and test-time augmentation)."""
    from ..train import evaluate
    from ..train.evaluation import evaluation_data, run_eval_split

    source = load_artifact(path)
    meta = source.meta
    recorded = dict(meta.config) or {"task": meta.task, "model": meta.model, "model_kwargs": meta.model_kwargs}
    same_data = data is None or data == recorded.get("data")
    run = SimpleNamespace(val_size=recorded.get("val_size", 0), eval_split=recorded.get("eval_split", "auto"))
    split = split or (run_eval_split(run) if same_data and meta.config else "test")
    batch_size = batch_size or recorded.get("eval_batch_size", 512)
    tta_flip = recorded.get("tta_flip", False) if tta_flip is None else tta_flip
    tta_translate = recorded.get("tta_translate", False) if tta_translate is None else tta_translate
    task, dataset = evaluation_data(
        recorded, data, split, radiometry=meta.radiometry, channels_last=False, source=str(path), skip_bad=skip_bad
    )
    loader = task.loader(dataset, batch_size, train=False, device=torch.device("cpu"))
    meter = task.meter(dataset)
    meter.source = f"{path} ({meta.model})"  # a class mismatch names the file
    result = evaluate(source.model, loader, None, tta_flip, meter=meter, tta_translate=tta_translate)
    return {
        **result,
        "task": task.name,
        "model": f"{meta.model} [{Path(path).name}]",
        "data": dataset.name,
        "split": split,
        "tta_flip": tta_flip,
        "tta_translate": tta_translate,
        "precision": Path(path).suffix.lstrip(".") + " artifact",
    }
