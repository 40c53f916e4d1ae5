"""Interrupted runs keep their work: SIGINT/SIGTERM finish the step, save last.pt and tell how
to resume (exit 130/143); a resumed run ends bit-identical to an uninterrupted one; last.pt is
also written by time; a run without ``out`` writes to runs/<model>-<timestamp>/."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from skiplab.train import Callback, TrainConfig, TrainingInterrupted, Trainer, fit, load_checkpoint
from skiplab.train.interrupt import StopSignals

# 6 steps per epoch on the fastest path for a net this small
TINY = dict(
    data="synthetic:shapes-96,test=16",
    model="cifar_fast_resnet",
    model_kwargs={"widths": [8, 16, 16]},
    epochs=2,
    batch_size=16,
    eval_batch_size=16,
    compile="off",
    precision="fp32",
    channels_last=False,
    progress=False,
    deterministic=True,
    tensorboard=False,
    lr=0.2,
    num_threads=1,
)


class SignalAt(Callback):
    """Sends ``signum`` to this process after optimiser step ``step`` (``times`` times)."""

    def __init__(self, step: int, signum: int = signal.SIGTERM, times: int = 1) -> None:
        self.step, self.signum, self.times = step, signum, times

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


@pytest.fixture
def sigint_default():
    """Python's own SIGINT handler for the test: a shell that starts a job in the background
    (``cmd &``, ``nohup``) hands it SIGINT ignored, and StopSignals defers to that."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_stop_signals_set_a_flag_then_defer_to_the_previous_handler(sigint_default):
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGINT) == stop._handle
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.signum == signal.SIGTERM and seen == []  # first: only the flag
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == [signal.SIGTERM]  # second: the old handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM] * 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_second_sigint_raises_keyboard_interrupt_at_once(sigint_default):
    with pytest.raises(KeyboardInterrupt) as info, StopSignals():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    assert not isinstance(info.value, TrainingInterrupted)


def test_sigint_mid_epoch_saves_restores_handlers_and_resumes_bit_identical(tmp_path):
    reference = fit(TrainConfig.from_dict({**TINY, "out": str(tmp_path / "a")}))
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        fit(TrainConfig.from_dict({**TINY, "out": str(tmp_path / "b")}), callbacks=[SignalAt(3, signal.SIGINT)])
    stop = info.value
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's handling is back
    assert stop.exit_code == 130 and stop.step == 3
    assert stop.checkpoint == tmp_path / "b" / "checkpoints" / "last.pt"
    assert "resume=True" in str(stop)
    state = load_checkpoint(stop.checkpoint)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 0, 3)
    resumed = fit(TrainConfig.from_dict({**TINY, "out": str(tmp_path / "b"), "resume": True}))
    a, b = reference.model.state_dict(), resumed.model.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_signal_at_the_last_step_of_an_epoch_resumes_to_the_same_end(tmp_path):
    common = {**TINY, "epochs": 2, "data": "synthetic:shapes-64,test=16"}  # 4 steps per epoch
    reference = fit(TrainConfig.from_dict({**common, "out": str(tmp_path / "a")}))
    with pytest.raises(TrainingInterrupted):
        fit(TrainConfig.from_dict({**common, "out": str(tmp_path / "b")}), callbacks=[SignalAt(4)])
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 0, 4)
    resumed = fit(TrainConfig.from_dict({**common, "out": str(tmp_path / "b"), "resume": True}))
    assert resumed.metrics["val_loss"] == reference.metrics["val_loss"]
    a, b = reference.model.state_dict(), resumed.model.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


class Crash(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            raise RuntimeError("crash")


def test_last_pt_is_written_by_time(tmp_path):
    # every step is "10 minutes" late: a crash in step 5 finds last.pt of step 4
    config = TrainConfig.from_dict({**TINY, "out": str(tmp_path), "checkpoint_minutes": 1e-9})
    with pytest.raises(RuntimeError, match="crash"):
        fit(config, callbacks=[Crash(5)])
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 4
    # off: nothing before the epoch end
    config = config.replace(out=str(tmp_path / "off"), checkpoint_minutes=0.0)
    with pytest.raises(RuntimeError, match="crash"):
        fit(config, callbacks=[Crash(5)])
    assert not (tmp_path / "off" / "checkpoints" / "last.pt").exists()


def test_without_out_the_run_goes_to_runs_model_timestamp(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = fit(TrainConfig.from_dict({**TINY, "epochs": 1}))
    assert result.run_dir.parent == Path("runs") and result.run_dir.name.startswith("cifar_fast_resnet-")
    assert (tmp_path / result.run_dir / "checkpoints" / "last.pt").is_file()
    assert f"outputs in {result.run_dir}/" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / result.run_dir / "checkpoints" / "last.pt")["config"]["out"] == str(
        result.run_dir
    )
    # save=False: nothing on disk; a Trainer alone the same
    before = sorted(os.listdir(tmp_path / "runs"))
    fit(TrainConfig.from_dict({**TINY, "epochs": 1, "save": False}))
    assert Trainer(TrainConfig.from_dict({**TINY, "save": False})).run_dir is None
    assert sorted(os.listdir(tmp_path / "runs")) == before


def test_retain_memory_is_off_for_library_calls_and_on_for_the_command(monkeypatch):
    calls = []
    monkeypatch.setattr("skiplab.train.loop.retain_freed_memory", lambda: calls.append(1))
    Trainer(TrainConfig.from_dict({**TINY, "save": False}))
    assert calls == []
    Trainer(TrainConfig.from_dict({**TINY, "save": False, "retain_memory": True}))
    assert calls == [1]
    from skiplab.cli import build_parser
    from skiplab.cli.train import resolve_config

    assert resolve_config(build_parser().parse_args(["train"])).retain_memory is True
    off = build_parser().parse_args(["train", "--no-retain-memory"])
    assert resolve_config(off).retain_memory is False


# ---- the real command, signalled from outside ------------------------------------------------
# 40 steps per epoch of a few ms: the signal lands well inside the first epoch
CLI = [
    "--model",
    "cifar_fast_resnet",
    "--model-kwargs",
    "{widths: [8, 16, 16]}",
    "--data",
    "synthetic:shapes-640,test=32",
    "--epochs",
    "2",
    "--lr",
    "0.2",
    "--batch-size",
    "16",
    "--eval-batch-size",
    "32",
    "--deterministic",
    "--precision",
    "fp32",
    "--no-channels-last",
    "--no-compile",
    "--num-threads",
    "1",
    "--no-tensorboard",
    "--no-progress",
    "--checkpoint-every",
    "2",
]


def skiplab(*args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "skiplab", *args], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(proc: subprocess.Popen, status: int = 0) -> tuple[str, str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == status, out + err
    return out, err


@pytest.mark.slow
def test_sigterm_to_skiplab_train_mid_epoch_then_resume_is_bit_identical(tmp_path):
    reference = skiplab("train", *CLI, "--out", str(tmp_path / "a"))
    victim = skiplab("train", *CLI, "--out", str(tmp_path / "b"))
    last = tmp_path / "b" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists():  # step 2's checkpoint: training is under way
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.01)
    victim.send_signal(signal.SIGTERM)
    _, err = finish(victim, 143)
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-2].startswith("skiplab train: interrupted by SIGTERM at step ")
    assert lines[-2].endswith(f"saved {last}")
    state = load_checkpoint(last)
    assert state["epoch"] == 0 and 0 < state["batch_in_epoch"] < 40  # mid-epoch 1
    assert f"step {state['step']} " in lines[-2]
    command = lines[-1].removeprefix("resume with: ")
    words = shlex.split(command)
    assert words[:2] == ["skiplab", "train"] and words[-3:] == ["--out", str(tmp_path / "b"), "--resume"]
    out, _ = finish(skiplab(*words[1:]))
    assert f"resumed {last}: epoch 0, batch {state['batch_in_epoch']}" in out
    finish(reference)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(last)
    assert a["step"] == b["step"] == 80
    assert [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])] == []
    assert [
        k
        for k in a["optimizer"]["state"]
        if not all(
            torch.equal(x, y) for x, y in zip(a["optimizer"]["state"][k].values(), b["optimizer"]["state"][k].values())
        )
    ] == []
    rows_a = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    rows_b = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:7] for r in rows_a] == [r.split(",")[:7] for r in rows_b]


def test_interruption_crosses_process_boundaries():
    """A --jobs worker's TrainingInterrupted reaches the parent intact (it was unpicklable,
    which broke the whole process pool on SIGTERM)."""
    import pickle
    from skiplab.train import TrainingInterrupted

    err = TrainingInterrupted(15, Path("run/checkpoints/last.pt"), 7, "step 7")
    back = pickle.loads(pickle.dumps(err))
    assert (back.summary, back.exit_code, back.step) == (err.summary, 143, 7)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_hang_up_stops_cleanly_unless_it_was_ignored(sigint_default):
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGHUP)  # the terminal went away: finish the step, save
            assert stop.signum == signal.SIGHUP
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # restored
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # started under nohup
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            assert stop.signum is None
    finally:
        signal.signal(signal.SIGHUP, previous)
