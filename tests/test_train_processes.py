"""Training across processes: a run killed with SIGKILL mid-epoch and resumed ends with
bit-identical weights; torchrun with 2 CPU processes (gloo) keeps identical replicas that
match a single process with the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from skiplab.train import load_checkpoint

WORKER = Path(__file__).with_name("train_worker.py")
# 8 steps per epoch, 2 epochs, fp32, one thread per process: the exact path
BASE = dict(
    data="synthetic:shapes-128,test=32",
    model="cifar_fast_resnet",
    model_kwargs={"widths": [8, 16, 16]},
    epochs=2,
    batch_size=16,
    eval_batch_size=32,
    lr=0.2,
    warmup_epochs=0.5,
    compile="off",
    precision="fp32",
    channels_last=False,
    progress=False,
    deterministic=True,
    num_threads=1,
    checkpoint_every=3,
)


def worker(config: dict, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(config), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def same_tensors(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    reference = worker({**BASE, "out": str(tmp_path / "a")})
    victim = worker({**BASE, "out": str(tmp_path / "b")}, "--hang-at-step", "11")
    marker = tmp_path / "b" / "hanging"
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[0]
        assert time.monotonic() < deadline, "the run never reached step 11"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (9, 1, 1)  # mid-epoch 2
    resumed_log = finish(worker({**BASE, "out": str(tmp_path / "b"), "resume": True}))
    assert "resumed" in resumed_log and "epoch 1, batch 1, step 9" in resumed_log
    finish(reference)

    a = torch.load(tmp_path / "a" / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "rank0.pt", weights_only=True)
    assert same_tensors(a, b) == []
    last_a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    last_b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert same_tensors(last_a["optimizer"]["state"][0], last_b["optimizer"]["state"][0]) == []
    assert (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1].split(",")[:5] == (
        tmp_path / "b" / "metrics.csv"
    ).read_text().splitlines()[1].split(",")[:5]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    # No BatchNorm: per-rank batch statistics would make DDP differ from one process by
    # design (BN normalises over 16 images per rank instead of 32). Without it, averaging
    # the two ranks' gradients equals the full-batch gradient up to summation order.
    config = {
        **BASE,
        "model": "cifar_resnet",
        "model_kwargs": {"depth": 8, "norm": False},
        "batch_size": 32,
        "lr": 0.05,
        "eval_split": "none",
        "checkpoint_every": 0,
    }
    single = worker({**config, "out": str(tmp_path / "single")})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            json.dumps({**config, "out": str(tmp_path / "ddp")}),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert "2 process(es)" in ddp.stdout and ddp.stdout.count("training cifar_resnet") == 1
    finish(single)

    rank0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    alone = torch.load(tmp_path / "single" / "rank0.pt", weights_only=True)
    assert same_tensors(rank0, rank1) == []  # replicas stay identical
    for name in rank0:
        torch.testing.assert_close(rank0[name], alone[name], rtol=1e-4, atol=1e-5, msg=name)
    moved = sum(
        (rank0[k] - load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["model"][k]).abs().sum().item()
        for k in rank0
    )
    assert moved == 0  # rank 0 wrote the checkpoint
    assert not (tmp_path / "ddp" / "checkpoints" / "best.pt").exists()  # no eval split
