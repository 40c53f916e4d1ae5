"""Mixed precision, memory format and compilation: choosing the fast path for the hardware.

* ``bf16`` autocast on CUDA devices that support it and on CPUs with native bf16 dot
  products (AVX512-BF16 or AMX; this machine's AMD EPYC has avx512_bf16). bf16 has fp32's
  exponent range, so no loss scaling is needed.
* ``fp16`` autocast with a :class:`torch.amp.GradScaler` where bf16 is not supported (older
  GPUs); on such CPUs ``auto`` keeps fp32, which is faster there than emulated half types.
* ``fp32`` on request (the exact path).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import ContextManager

import torch
from torch import nn


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """Whether the CPU has native bf16 arithmetic (avx512_bf16 or AMX-BF16)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:  # not Linux: ask oneDNN
        return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> the fastest exact-enough precision on ``device``; others are checked."""
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


@dataclass
class Precision:
    """Autocast context and gradient scaler for one precision on one device."""

    name: str
    device: torch.device

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is active only for fp16 (a disabled scaler is a no-op)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(device)


def should_compile(
    setting: str,
    device: torch.device,
    *,
    deterministic: bool,
    total_steps: int,
    image_size: int,
    model: nn.Module | None = None,
) -> bool:
    """``compile: auto`` policy (measure with ``benchmarks/train_throughput.py --compile on|off``).

    On this 2-core EPYC the best CIFAR ResNet-56 step is bf16 + channels_last + compile
    (291 img/s against 128 img/s eager fp32, DESIGN.md), while for 224-px ResNet-50 the best
    is bf16 + channels_last *without* compile: there oneDNN convolutions dominate and
    compilation costs minutes. Compilation also costs minutes up front on CPU. So: on for
    CUDA and for CPU inputs of at most 64 px in runs of at least 500 steps; never in
    deterministic mode (bit-exact resume is only promised for eager kernels); and never on
    CPU for a ``model`` with max-pooling layers: inductor fuses the max-pool
    backward with the BatchNorm backward into loops that ran 3-4x slower than the eager
    kernels (``cifar_fast_resnet_s``, one thread, batch 256: 294 img/s compiled against 338
    eager; two threads, batch 512: 455 against 527).
    On a CPU without native bf16 (AVX2 only, so ``auto`` runs fp32) the compiled CIFAR
    ResNet-20 step ran at 1.05x and 0.98x the eager step's speed by CPU time in two runs (one
    thread, load average 7, interleaved rounds): no gain or loss beyond the noise, so the
    policy does not depend on the precision.
    """
    if setting != "auto":
        return setting == "on"
    if deterministic or total_steps < 500:
        return False
    if device.type == "cuda":
        return True
    return image_size <= 64 and not (model is not None and has_max_pool(model))


def has_max_pool(model: nn.Module) -> bool:
    """Whether ``model`` has an ``nn.MaxPool2d`` (ImageNet stems have one too, but their
    224-px inputs are off the ``compile: auto`` path already)."""
    return any(isinstance(m, nn.MaxPool2d) for m in model.modules())
