"""He et al. 2015, Table 6 and Fig. 6, in one command: CIFAR-10 ResNets and their plain twins
trained by the paper's recipe (``configs/he2015_cifar.yaml``), many runs sharing one device.

    # the whole table, 3 seeds, on one CUDA device (the runs share it as processes)
    python benchmarks/he2015_table6.py --data cifar10:PATH --out runs/he2015-table6 --seeds 0 1 2
    # the four nets of Fig. 6's 20/56 pair, one seed
    python benchmarks/he2015_table6.py --nets resnet20 resnet56 plain20 plain56
    # a few steps on the CPU: the same code path (the test suite runs this)
    python benchmarks/he2015_table6.py --device cpu --steps 20 --nets resnet20 plain20
    # keep finished runs, stripped, where git can hold them, and report there
    python benchmarks/he2015_table6.py --report-only --out runs/he2015-table6 --keep docs/evidence/he2015

Each run is ``OUT/<net>_s<seed>/`` with the standard layout (config.yaml, metrics.csv,
checkpoints/last.pt), trained by :func:`skiplab.train.resident.fit_resident` (the data and
the augmentation on the device, CUDA graphs through ``torch.compile``). Running the command
again resumes every unfinished run from its last.pt and skips finished ones; SIGTERM/SIGINT
stop every run at its next step with last.pt written. ``--jobs`` runs that many at once
(default: all on CUDA, 1 on CPU), longest first. ``--mps`` starts NVIDIA's Multi-Process
Service when it is there, so the runs' small kernels overlap on the GPU instead of taking
turns. The recipe's deviations from the paper are stated in the report
(``skiplab.studies.he2015``), which this command writes at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ALL_NETS = ("resnet110", "resnet56", "plain56", "resnet44", "plain44", "resnet32", "plain32",
            "resnet20", "plain20")


def depth(net: str) -> int:
    return int(net.lstrip("resnetplain"))


def run_config(args: argparse.Namespace, net: str, seed: int):
    """The recipe for one (net, seed): He 2015 §4.2 from the YAML, on all 50,000 training
    images, evaluated on the test split; ResNet-110 with the paper's 0.01 warm-up."""
    from skiplab.train.config import TrainConfig
    overrides = dict(model=f"cifar_{net}", seed=seed, val_size=0, eval_split="test",
                     device=args.device, model_kwargs={"zero_init_residual": False},
                     error_warmup_lr=0.01 if depth(net) >= 110 else 0.0)
    if args.steps:
        scale = args.steps / 64000
        overrides.update(steps=args.steps, milestones=[round(32000 * scale), round(48000 * scale)])
    return TrainConfig.from_yaml(args.config, overrides)


def train_one(config_dict: dict, out: str, log_path: str) -> None:
    """One run in its own process (spawned: a fresh CUDA context), output to ``log_path``."""
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        from skiplab.train.config import TrainConfig
        from skiplab.train.resident import fit_resident, load_resident_data
        config = TrainConfig.from_dict(config_dict)
        train_set, eval_set = load_resident_data(config)
        result = fit_resident(config, train_set, eval_set, out=out, resume=True,
                              log=lambda m: print(m, flush=True))
        print(f"done: step {result.step}, finished {result.finished}", flush=True)


def is_finished(run_dir: Path, steps: int) -> bool:
    from skiplab.train.checkpoint import load_checkpoint
    last = run_dir / "checkpoints" / "last.pt"
    return last.is_file() and load_checkpoint(last).get("step", 0) >= steps


def keep(run_dir: Path, dest: Path, data: str) -> Path:
    """Copy a finished run where git can hold it: config.yaml, metrics.csv, its log and
    checkpoints/last.pt stripped to what inference needs, with ``data`` recorded as the
    run's data spec (the same images, where this machine has them) and ``device: auto``
    (so fine-tuning it runs wherever it is read)."""
    from skiplab.atomic import write_text
    from skiplab.train import load_checkpoint, save_checkpoint, strip_training_state
    from skiplab.train.config import TrainConfig
    state = strip_training_state(load_checkpoint(run_dir / "checkpoints" / "last.pt"))
    state["config"] = {**state["config"], "data": data, "device": "auto"}
    (dest / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, dest / "checkpoints" / "last.pt")
    write_text(dest / "config.yaml", TrainConfig.from_dict(state["config"]).to_yaml())
    write_text(dest / "metrics.csv", (run_dir / "metrics.csv").read_text())
    log = run_dir.with_name(run_dir.name + ".log")
    if log.is_file():
        write_text(dest / "train.log", log.read_text())
    return dest


def start_mps() -> bool:
    """Start the CUDA Multi-Process Service for this command's runs; False where it is absent."""
    for key, sub in (("CUDA_MPS_PIPE_DIRECTORY", "pipe"), ("CUDA_MPS_LOG_DIRECTORY", "log")):
        os.environ.setdefault(key, f"/tmp/skiplab-mps-{sub}")
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["nvidia-cuda-mps-control", "-d"], check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"mps: not started ({e}); the runs take turns on the GPU", flush=True)
        return False
    probe = subprocess.run([sys.executable, "-c", "import torch; torch.zeros(1, device='cuda')"],
                           capture_output=True, timeout=120)
    if probe.returncode != 0:
        stop_mps()
        print("mps: a client could not start under it; stopped", flush=True)
        return False
    print("mps: started", flush=True)
    return True


def stop_mps() -> None:
    subprocess.run(["nvidia-cuda-mps-control"], input=b"quit\n", timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/he2015_cifar.yaml")
    parser.add_argument("--data", default=None, help="--data spec (default: the config's)")
    parser.add_argument("--out", type=Path, default=Path("runs/he2015-table6"))
    parser.add_argument("--nets", nargs="+", default=list(ALL_NETS), choices=ALL_NETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=0,
                        help="shorter runs (milestones scaled): smoke tests only")
    parser.add_argument("--jobs", type=int, default=0, help="runs at once (0: all on CUDA, 1 on CPU)")
    parser.add_argument("--mps", action="store_true", help="start CUDA MPS where available")
    parser.add_argument("--no-report", action="store_true", help="train only")
    parser.add_argument("--report-only", action="store_true", help="measure and report the runs in OUT")
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy the finished runs, stripped, to KEEP/<net>[_s<seed>]/ and report there")
    args = parser.parse_args(argv)
    import torch
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = sorted(((net, s) for net in args.nets for s in args.seeds), key=lambda r: -depth(r[0]))
    configs = {r: run_config(args, *r) for r in runs}
    if args.data:
        configs = {r: c.replace(data=args.data) for r, c in configs.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return report(args, runs, configs)
    from skiplab.train.resident import load_resident_data
    load_resident_data(next(iter(configs.values())))   # decode (and cache) the images once
    todo = [r for r in runs if not is_finished(args.out / f"{r[0]}_s{r[1]}", configs[r].steps)]
    jobs = args.jobs or (len(todo) if args.device == "cuda" else 1)
    mps = args.mps and args.device == "cuda" and start_mps()
    print(f"{len(runs)} runs, {len(todo)} to train, {jobs} at once on {args.device}; "
          f"outputs in {args.out}/", flush=True)
    ctx = mp.get_context("spawn")
    running: dict = {}
    stopping = False

    def forward_signal(signum, frame):
        nonlocal stopping
        stopping = True
        for p in running.values():
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.time()
    failed = []
    try:
        while todo or running:
            while todo and len(running) < jobs and not stopping:
                net, seed = todo.pop(0)
                run_dir = args.out / f"{net}_s{seed}"
                p = ctx.Process(target=train_one, args=(configs[(net, seed)].to_dict(),
                                                        str(run_dir), str(args.out / f"{net}_s{seed}.log")))
                p.start()
                running[(net, seed)] = p
            time.sleep(1.0)
            for key, p in list(running.items()):
                if not p.is_alive():
                    p.join()
                    del running[key]
                    status = "done" if p.exitcode == 0 else f"failed (exit {p.exitcode})"
                    if p.exitcode != 0:
                        failed.append(key)
                    print(f"{key[0]} seed {key[1]}: {status} at {time.time() - started:.0f} s",
                          flush=True)
            if stopping:
                todo = []
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if mps:
            stop_mps()
    print(f"training: {time.time() - started:.0f} s", flush=True)
    if failed:
        print(f"failed: {failed}; see their logs in {args.out}/", file=sys.stderr)
        return 1
    if stopping:
        print(f"stopped; run the same command again to resume (outputs in {args.out}/)")
        return 130
    return 0 if args.no_report else report(args, runs, configs)


def report(args: argparse.Namespace, runs: list, configs: dict) -> int:
    """Keep the runs (``--keep``) and write the report beside them."""
    from skiplab.studies.he2015 import write_report
    # a run is OUT/<net>_s<seed>, or a kept one OUT/<net> (seed 0)
    dirs = [args.out / f"{n}_s{s}" if s or (args.out / f"{n}_s{s}").is_dir() else args.out / n
            for n, s in runs]
    where = args.out
    if args.keep:
        recorded = args.data or next(iter(configs.values())).data
        dirs = [keep(d, args.keep / (n if s == 0 else f"{n}_s{s}"), recorded)
                for d, (n, s) in zip(dirs, runs)]
        where = args.keep
    path = write_report(dirs, where, data=args.data)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
