"""Shared test set-up: deterministic seeds, one thread per xdist worker, data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # two workers on two cores: no oversubscription


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar10_jpg() -> Path:
    """The real CIFAR-10 image folders shipped beside the repository (skip if absent)."""
    path = SHARED_DATA / "cifar10-jpg"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def sar_real() -> Path:
    """The six real SAR scenes shipped beside the repository (skip if absent)."""
    path = SHARED_DATA / "sar-real"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of many small forwards on a shared 2-core machine
    (threads of several processes slow each other down); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
