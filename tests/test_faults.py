"""Faults a new user meets, through the real command: each ends in one line on stderr with
exit status 2 (130 / 143 for a signal), every input unchanged and nothing half-written left
behind; printed resume advice works as printed; conversions are said in one line; progress
bars stay off a redirected stderr.

Most cases run in one driver process (``skiplab.cli.main`` called once per command line, its
stderr captured; torch imported once), the rest in their own process: a real signal, a real
file-size limit (``RLIMIT_FSIZE``: the kernel refuses the write, as with a full disk) and a
full disk injected into the checkpoint writes of a training run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import skiplab
from skiplab.models import create_model
from skiplab.train.checkpoint import save_checkpoint

SHAPES = "synthetic:shapes-64,test=16"  # 64 training images, 10 classes
TIMEOUT = 900  # seconds per command: generous, a loaded 2-core machine is slow to import torch
TRAIN = [
    "train",
    "--model",
    "cifar_resnet20",
    "--data",
    SHAPES,
    "--batch-size",
    "16",
    "--compile",
    "off",
    "--precision",
    "fp32",
    "--no-tensorboard",
]

# Runs command lines through skiplab.cli.main in one process: {"rc", "err"} per line.
DRIVER = """
import contextlib, io, json, sys, warnings
from skiplab.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    warnings.resetwarnings()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as stop:
            rc = stop.code if isinstance(stop.code, int) else 2
    results.append({"rc": rc, "err": err.getvalue(), "out": out.getvalue()})
print(json.dumps(results))
"""


def env(tmp: Path) -> dict:
    """The environment of a command run in ``tmp``: the skiplab under test, one thread."""
    src = str(Path(skiplab.__file__).resolve().parents[1])
    path = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    e = dict(os.environ, OMP_NUM_THREADS="1", SKIPLAB_CACHE=str(tmp / "cache"), PYTHONPATH=path)
    e.pop("SKIPLAB_DEBUG", None)
    return e


def digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def partials(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


def one_line_error(rc: int, err: str, command: str, expected: str) -> None:
    assert rc == 2, (rc, err)
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"skiplab {command}: error: "), err
    assert expected in err, err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    scene = np.random.default_rng(0).gamma(1.0, 1.0, (64, 64)).astype(np.float32)
    np.save(d / "scene.npy", scene)
    with_inf = scene.copy()
    with_inf[3, 5] = np.inf
    np.save(d / "inf.npy", with_inf)
    np.save(d / "slc.npy", (np.sqrt(scene) * np.exp(1j * scene)).astype(np.complex64))
    (d / "a_file").write_text("I am a file\n")
    (d / "a_dir").mkdir()
    save_checkpoint(
        {"config": {"model": "cifar_resnet32"}, "model": create_model("cifar_resnet32").state_dict()}, d / "resnet32.pt"
    )
    save_checkpoint(
        {"config": {"model": "cifar_resnet20", "data": SHAPES}, "model": create_model("cifar_resnet20").state_dict()},
        d / "resnet20.pt",
    )
    from PIL import Image

    for c in ("a", "b"):
        (d / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i + 10, np.uint8)).save(d / "imgs" / c / f"{i}.png")
    Image.fromarray(np.full((8, 8), 99, np.uint8)).save(d / "imgs" / "a" / "grey.png")
    Image.fromarray(np.full((8, 8, 4), 99, np.uint8)).save(d / "imgs" / "b" / "rgba.png")
    return d


# (id, command line with {d} for the inputs, expected: the error's text, or ("warning", text))
CASES = [
    ("train-out-is-a-file", "train --out {d}/a_file --steps 2", "a_file is a file; expected a directory"),
    ("train-out-inside-a-file", "train --out {d}/a_file/run --steps 2", "a_file is a file, not a directory"),
    (
        "reconstruct-out-inside-a-file",
        "reconstruct {d}/scene.npy --out {d}/a_file/x.npy --tile 32",
        "a_file is a file, not a directory",
    ),
    (
        "reconstruct-out-is-a-directory",
        "reconstruct {d}/scene.npy --out {d}/a_dir --tile 32",
        "a_dir is a directory; expected a file name",
    ),
    (
        "encode-out-inside-a-file",
        "encode {d}/scene.npy --out {d}/a_file/x.npz --tile 32",
        "a_file is a file, not a directory",
    ),
    (
        "encode-sarl-out-inside-a-file",
        "encode {d}/scene.npy --out {d}/a_file/x.sarl --tile 32",
        "a_file is a file, not a directory",
    ),
    (
        "decode-a-scene",
        "decode {d}/scene.npy --out out.npy",
        "scene.npy is not a latent file: expected a .sarl or .npz written by skiplab encode; found a NumPy array",
    ),
    (
        "init-from-mismatch",
        "train --out run --steps 2 --init-from {d}/resnet32.pt",
        "init_from {d}/resnet32.pt (cifar_resnet32) does not fit CifarResNet",
    ),
    (
        "calib-above-the-data",
        "quantize {d}/resnet20.pt --calib 10000000 --out q",
        "--calib 10000000: synthetic:shapes-64/train has 64 training images; pass at most 64",
    ),
    ("calib-random-inputs", "quantize cifar_resnet20 --calib 10000000 --out q", "at most 4096"),
    (
        "infinite-pixels",
        "reconstruct {d}/inf.npy --out out.npy --tile 32",
        "values must be finite and >= 0; found 1 infinite pixel(s)",
    ),
    (
        "overlap-above-half-the-tile",
        "reconstruct {d}/scene.npy --out out.npy --tile 32 --overlap 30",
        "the overlap must be in [0, tile/2 = 16] for 32 px tiles; found 30",
    ),
    (
        "complex-slc-is-said",
        "reconstruct {d}/slc.npy --out slc_ae.npy --tile 32",
        ("warning", "slc.npy: a complex SLC (complex64) read as amplitude |z|"),
    ),
    (
        "grey-and-rgba-images-are-said",
        "data info folder:{d}/imgs",
        (
            "warning",
            "1 greyscale image(s) repeated to 3 channels and 1 image(s) with transparency had it dropped (of 8)",
        ),
    ),
]


@pytest.fixture(scope="module")
def driven(inputs, tmp_path_factory) -> dict:
    """Every case of CASES run in one driver process (in its own working directory)."""
    work = tmp_path_factory.mktemp("work")
    before = digest(inputs)
    lines = []
    for _, args, _ in CASES:
        words = shlex.split(args.format(d=inputs))
        lines.append(words + (TRAIN[1:] if words[0] == "train" else []))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(lines)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=work,
        env=env(work),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"results": dict(zip([c[0] for c in CASES], results)), "work": work, "unchanged": digest(inputs) == before}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fault_is_one_line(driven, inputs, case):
    name, args, expected = case
    result = driven["results"][name]
    command = args.split()[0]
    if isinstance(expected, tuple):  # a conversion: done, and said once in one line
        assert result["rc"] == 0, result
        warnings = [line for line in result["err"].splitlines() if ": warning: " in line]
        assert len(warnings) == 1 and warnings[0].startswith(f"skiplab {command}: warning: "), result["err"]
        assert expected[1] in warnings[0], warnings
    else:
        one_line_error(result["rc"], result["err"], command, expected.format(d=inputs))
    assert "\r" not in result["err"]  # stderr is no terminal: no progress-bar redraws
    assert driven["unchanged"]  # no input changed, nothing added beside them
    work = driven["work"]
    assert partials(work) == [] and not (work / "run").exists() and not (work / "out.npy").exists()
    assert not list(work.glob("q*")), list(work.glob("q*"))


def test_read_only_directory(tmp_path):
    """--out in a directory this user cannot write: refused before any work (as root every
    directory is writable, so the check is skipped there)."""
    if os.geteuid() == 0:
        pytest.skip("root can write in a read-only directory")
    ro = tmp_path / "ro"
    ro.mkdir()
    np.save(tmp_path / "scene.npy", np.ones((32, 32), np.float32))
    ro.chmod(0o555)
    try:
        for args, command in (
            (["train", "--out", str(ro / "run"), "--steps", "1", *TRAIN[1:]], "train"),
            (["reconstruct", str(tmp_path / "scene.npy"), "--out", str(ro / "x.npy")], "reconstruct"),
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "skiplab", *args],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                cwd=tmp_path,
                env=env(tmp_path),
            )
            one_line_error(proc.returncode, proc.stderr, command, "cannot write in")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def _fsize_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_disk_that_fills_during_reconstruct_is_one_line_and_leaves_no_partial(tmp_path):
    """The output's space is reserved before it is memory-mapped: a full disk is an error
    at once (here the kernel's file-size limit refuses the 1 MB output), not a SIGBUS."""
    np.save(tmp_path / "big.npy", np.random.default_rng(0).gamma(1.0, 1.0, (512, 512)).astype(np.float32))
    (tmp_path / "out").mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "skiplab",
            "reconstruct",
            str(tmp_path / "big.npy"),
            "--out",
            str(tmp_path / "out" / "big_ae.npy"),
            "--tile",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(tmp_path),
        preexec_fn=_fsize_limit(256 * 1024),
    )
    one_line_error(proc.returncode, proc.stderr, "reconstruct", "big_ae.npy: File too large")
    assert list((tmp_path / "out").iterdir()) == []  # no hidden .partial file


# A full disk from the Nth checkpoint written on: every write of that file fails with ENOSPC.
FULL_DISK = """
import errno, os, sys
import skiplab.atomic as atomic
FROM = int(os.environ["FULL_FROM_CHECKPOINT"])
seen = []
real_open = open

class FullDisk:
    def __init__(self, f):
        self.f = f
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.f.close()

def full_open(path, mode="r", **kwargs):
    f = real_open(path, mode, **kwargs)
    if ".pt." in os.path.basename(str(path)):
        seen.append(path)
        if len(seen) >= FROM:
            return FullDisk(f)
    return f

atomic.open = full_open
from skiplab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_full_disk_while_a_checkpoint_is_written_keeps_the_previous_one(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, *TRAIN, "--steps", "4", "--checkpoint-every", "2", "--out", str(run)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=dict(env(tmp_path), FULL_FROM_CHECKPOINT="2"),
    )
    one_line_error(
        proc.returncode,
        proc.stderr,
        "train",
        f"cannot write {run}/checkpoints/last.pt: No space left on device; its previous version is kept",
    )
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2  # the previous checkpoint, whole
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]  # no temp file


@pytest.mark.slow
def test_train_start_line_and_no_bar_in_a_redirected_log(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "skiplab", *TRAIN, "--steps", "2", "--out", "run"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 steps (4 per epoch)" in proc.stdout and "epochs x" not in proc.stdout, proc.stdout
    assert "\r" not in proc.stderr and "batch/s" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_an_interrupted_study_resumes_as_printed(tmp_path):
    """Ctrl-C during the measurements after training: exit 130 and the exact --resume command;
    the same command with --resume (--quick kept) and the printed one both finish it."""
    args = ["study", "--quick", "--parts", "lesion", "--seeds", "1", "--out", "st"]
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "skiplab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    for line in proc.stdout:  # the last run is trained: the lesion part starts
        if line.startswith("[2/2]"):  # (the measurements take seconds: no race)
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, (out, err)
    last = err.strip().splitlines()[-1]
    assert last == "skiplab study: interrupted; continue with: skiplab study --resume --out st", err
    assert not (tmp_path / "st" / "results" / "lesion.json").exists()
    # other options are refused in one line; the same ones continue the study
    other = subprocess.run(
        [sys.executable, "-m", "skiplab", *args, "--seeds", "2", "--resume"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    one_line_error(other.returncode, other.stderr, "study", "cannot resume st with other options: seeds differ")
    same = subprocess.run(
        [sys.executable, "-m", "skiplab", *args, "--resume"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    assert same.returncode == 0, same.stderr
    assert "lesion: done" in same.stdout and (tmp_path / "st" / "report.html").is_file()
    printed = shlex.split(re.sub(r"^.*continue with: skiplab ", "", last))
    again = subprocess.run(
        [sys.executable, "-m", "skiplab", *printed],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    assert again.returncode == 0, again.stderr


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _left_behind(pids: list[int], wait: float = 20.0) -> list[int]:
    """Those of ``pids`` still alive after up to ``wait`` seconds (zombies count as gone)."""
    import time

    deadline = time.monotonic() + wait
    while True:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _wait_for(predicate, proc: subprocess.Popen, what: str) -> None:
    import time

    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}: {proc.communicate()}")
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_during_a_studys_measurements_resumes_as_printed_without_redoing_work(tmp_path):
    """SIGTERM (what a scheduler sends) while the lesions are measured: exit 143 and the one-line
    advice; the printed command trains nothing again, and measures none of the lesioned
    evaluations kept before the signal again."""
    args = ["study", "--quick", "--parts", "lesion", "--models", "resnet", "--seeds", "1", "--out", "st"]
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "skiplab", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    results = tmp_path / "st" / "results"

    def kept() -> dict[str, list[str]]:  # each net's kept evaluations, one JSON line each
        return {p.name: p.read_text().splitlines() for p in sorted(results.glob("lesion-*.evaluations.jsonl"))}

    _wait_for(lambda: sum(map(len, kept().values())) >= 2, proc, "two lesioned evaluations were kept")
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=TIMEOUT)[1]
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last == "skiplab study: interrupted; continue with: skiplab study --resume --out st", err
    before = kept()
    assert sum(map(len, before.values())) >= 2 and not (results / "lesion.json").exists()
    printed = shlex.split(last.split("continue with: skiplab ", 1)[1])
    again = subprocess.run(
        [sys.executable, "-m", "skiplab", *printed],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    assert again.returncode == 0, again.stderr
    assert "nothing to train" in again.stdout and "lesion: done" in again.stdout, again.stdout
    after = kept()
    for net, lines in before.items():
        whole = [line for line in lines if line.endswith("}")]  # (a line cut by the signal)
        assert after[net][: len(whole)] == whole, f"{net}: the kept evaluations changed"
        keys = [json.loads(line)["key"] for line in after[net] if line.endswith("}")]
        assert len(keys) == len(set(keys)), f"{net}: a kept evaluation was measured again"
    assert (results / "lesion.json").is_file() and (tmp_path / "st" / "report.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("ctrl_c", [True, False], ids=["ctrl-c", "sigterm-to-the-parent"])
def test_an_interrupted_study_with_jobs_stops_its_workers_and_resumes(tmp_path, ctrl_c):
    """``--jobs 2`` while both workers train: Ctrl-C (SIGINT to the terminal's process group)
    or SIGTERM to the parent alone (``kill PID``, a scheduler) -- the workers save their
    last.pt and stop, exit 130 / 143 with the one-line advice, no worker process is left, and
    the printed command resumes both runs from their checkpoints."""
    args = ["study", "--quick", "--parts", "lesion", "--models", "resnet", "--seeds", "2", "--jobs", "2", "--out", "st"]
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "skiplab", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env(tmp_path),
        start_new_session=True,
    )
    logs = [tmp_path / "st" / "runs" / name / "train.log" for name in ("resnet-14-s0", "resnet-14-s1")]
    _wait_for(
        lambda: all(p.is_file() and "training " in p.read_text() for p in logs), proc, "both workers started training"
    )
    workers = _children(proc.pid)
    assert len(workers) >= 2
    if ctrl_c:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=TIMEOUT)[1]
    name, code = ("SIGINT", 130) if ctrl_c else ("SIGTERM", 143)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == (
        f"skiplab study: interrupted: stopped by {name}; each run in progress saved its last "
        f"checkpoint in st; continue with: skiplab study --resume --out st"
    ), err
    assert _left_behind(workers) == []
    assert all((p.parent / "checkpoints" / "last.pt").is_file() for p in logs)
    if not ctrl_c:
        return  # the resume is the same as after a Ctrl-C
    printed = shlex.split(err.strip().splitlines()[-1].split("continue with: skiplab ", 1)[1])
    again = subprocess.run(
        [sys.executable, "-m", "skiplab", *printed],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    assert again.returncode == 0, again.stderr
    assert "lesion: done" in again.stdout, again.stdout
    assert all("resumed " in p.read_text() for p in logs), [p.read_text() for p in logs]
