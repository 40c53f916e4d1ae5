"""Training-step throughput: skiplab's default step against plain PyTorch, in one run.

For CIFAR ResNet-20 and ResNet-56 (batch 128, 32x32; the default) and ResNet-50 (batch 16,
224x224; ``--models resnet50``) it times

* baseline: the identical architecture written below in plain PyTorch (torchvision-style
  code), eager fp32, NCHW, SGD -- what a straightforward training script does;
* skiplab: ``Trainer.train_step`` as ``skiplab train --config configs/he2015_cifar.yaml``
  runs it for the CIFAR nets (the recipe's optimiser and model settings; precision auto =
  bf16 on CPUs with avx512_bf16 or AMX, else fp32; channels_last; ``compile: auto``;
  ``retain_memory``), i.e. exactly the step ``fit`` runs, on a batch held in memory;
* plain+retain: the baseline script after ``retain_freed_memory()``, to show how much of
  the speed-up the allocator setting alone accounts for.

Each runs in its own process (the allocator setting is process-wide); rounds alternate
them, one process running at a time, so that load from other processes hits all alike; the
speed-up is the median of the per-round ratios, each printed with the load average at its
end. Achieved GFLOP/s (forward + backward FLOPs counted by ``torch.utils.flop_counter``) is
printed as a share of the matmul peak measured in the same run in the default step's
precision (bf16 where the CPU has it natively, else fp32: emulated bf16 runs at about
1 GFLOP/s), by wall-clock and by process CPU time (on a loaded machine the wall-clock of a
1-thread process is several times its CPU time, and the CPU-time shares are the ones to
compare), and minor page faults per step as the allocator's cost. Targets, for CPUs whose
default step runs bf16 (2-core EPYC with avx512_bf16): >= 2.5x (ResNet-56), >= 2.7x (ResNet-50).

``--profile`` prints instead where the default step's CPU time goes (torch.profiler, by kind
of op: oneDNN convolutions forward and backward, inductor's fused BatchNorm/ReLU/add
kernels, optimiser, loss) and the data loader's CPU time per batch.

    python benchmarks/train_throughput.py [--models resnet20 resnet56 resnet50] [--rounds 5] [--threads N]
    python benchmarks/train_throughput.py --profile --threads 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from skiplab.data import ImageDataset
from skiplab.train import TrainConfig, Trainer
from skiplab.train.allocator import retain_freed_memory
from skiplab.train.precision import cpu_supports_bf16, resolve_precision


# ---- plain PyTorch baselines (torchvision-style), written out independently -------------
class CifarBasic(nn.Module):
    """He 2015 CIFAR basic block with the option-A (zero-padding, parameter-free) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            short = nn.functional.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return torch.relu(out + short)


class CifarResNet(nn.Module):
    def __init__(self, n: int = 9, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(CifarBasic(cin, cout, 2 if i > 0 and j == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for i, (n, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
            for j in range(n):
                blocks.append(Bottleneck(cin, width, 2 if i > 0 and j == 0 else 1))
                cin = width * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


CASES = {  # name: (skiplab model, baseline factory, batch, image side, classes)
    "resnet20": ("cifar_resnet20", lambda: CifarResNet(3, 10), 128, 32, 10),
    "resnet56": ("cifar_resnet56", lambda: CifarResNet(9, 10), 128, 32, 10),
    "resnet50": ("resnet50", lambda: ResNet50(1000), 16, 224, 1000),
}
HE_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "he2015_cifar.yaml"   # the CIFAR nets' recipe


# ---- measurements ------------------------------------------------------------------------
def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 30) -> tuple[float, float]:
    """Best-of-``reps`` throughput of an n x n matmul (the best rep is the least disturbed),
    by wall-clock and by process CPU time: (wall GFLOP/s, CPU GFLOP/s)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    wall = cpu = float("inf")
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return 2 * n ** 3 / wall / 1e9, 2 * n ** 3 / cpu / 1e9


def load() -> float:
    """The 1-minute load average (other processes on the machine)."""
    return os.getloadavg()[0]


def baseline_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def time_steps(step, n: int) -> tuple[float, float, float]:
    """(wall-clock, process CPU time, minor page faults) per step. CPU time is what load from
    other processes distorts least; page faults show what the allocator costs."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n,
            (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n)


def build(kind: str, name: str, compile_mode: str):
    """The step to time and what to report of it. ``kind``: skiplab (the default Trainer step,
    which also sets ``retain_memory``), plain (a straightforward script), plain+retain (the same
    script after :func:`retain_freed_memory`, to show what the allocator setting alone gives)."""
    model_name, make_baseline, batch, side, classes = CASES[name]
    if kind == "skiplab":
        # a random in-memory dataset of two batches; the compile policy sees a long run (steps)
        images = torch.randint(0, 256, (2 * batch, 3, side, side), dtype=torch.uint8)
        labels = torch.arange(2 * batch) % classes
        data = ImageDataset(images, labels, [str(i) for i in range(classes)], (0.5,) * 3, (0.25,) * 3,
                            f"random-{side}px")
        run = dict(model=model_name, batch_size=batch, steps=10_000, eval_split="none", progress=False,
                   save=False, compile=compile_mode, retain_memory=True, tensorboard=False)
        config = (TrainConfig.from_yaml(HE_RECIPE, run) if side == 32 else   # as `skiplab train --config`
                  TrainConfig(lr=0.01, weight_decay=1e-4, **run))
        trainer = Trainer(config, train_set=data)
        x, y = next(iter(trainer.train_loader))
        info = dict(params=sum(p.numel() for p in trainer.model.parameters()),
                    precision=trainer.precision.name, channels_last=config.channels_last,
                    compiled=trainer.compiled, loader=trainer.train_loader)
        return lambda: trainer.train_step(x, y), info
    if kind == "plain+retain":
        retain_freed_memory()
    model = make_baseline().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y = torch.randn(batch, 3, side, side), torch.arange(batch) % classes   # NCHW fp32
    with FlopCounterMode(display=False) as counter:
        baseline_step(model, opt, x, y)
    info = dict(params=sum(p.numel() for p in model.parameters()), flops=counter.get_total_flops())
    return lambda: baseline_step(model, opt, x, y), info


def worker(kind: str, name: str, compile_mode: str, threads: int, conn) -> None:
    """One process per kind, so that a setting of one (the allocator's) cannot reach another.
    Warms up, reports, then times ``n`` steps each time it is sent ``n`` (None ends it)."""
    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    step, info = build(kind, name, compile_mode)
    t = time.perf_counter()
    for _ in range(3):    # warm-up (and compilation when compile is on)
        step()
    info.pop("loader", None)    # (not picklable; --profile uses it)
    conn.send(dict(info, warmup_s=time.perf_counter() - t))
    while (n := conn.recv()) is not None:
        conn.send((*time_steps(step, n), load()))


PROFILE_GROUPS = (  # (label, op names whose self CPU time it sums, or a name prefix ending in *)
    ("convolution forward (oneDNN)", ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution")),
    ("convolution backward (oneDNN)", ("aten::convolution_backward",)),
    ("inductor kernels: BatchNorm, ReLU, add, casts", ("## Call CompiledFxGraph*",)),
    ("BatchNorm (eager)", ("aten::native_batch_norm", "aten::native_batch_norm_backward")),
    ("ReLU, add, pad, casts (eager)", ("aten::threshold_backward", "aten::clamp_min_", "aten::clamp_min",
                                       "aten::relu_", "aten::add", "aten::add_", "aten::constant_pad_nd",
                                       "aten::copy_", "aten::_to_copy", "aten::fill_")),
    ("optimiser (fused SGD)", ("aten::_fused_sgd_",)),
    ("loss, accuracy sums", ("aten::_log_softmax", "aten::_log_softmax_backward_data", "aten::nll_loss_forward",
                             "aten::nll_loss_backward", "aten::argmax", "aten::eq", "aten::sum", "aten::mul",
                             "aten::stack", "aten::cat")),
)


def profile_step(name: str, compile_mode: str, steps: int) -> None:
    """Per-op CPU time of the default step (torch.profiler), grouped, and the data loader's
    time per batch measured apart (``fit`` runs it on the main thread, between steps)."""
    from torch.profiler import ProfilerActivity, profile
    step, info = build("skiplab", name, compile_mode)
    for _ in range(3):
        step()
    loader = info["loader"]
    start = time.process_time()
    for _ in range(steps):
        next(iter(loader))
    loader_ms = 1e3 * (time.process_time() - start) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall, cpu, _ = time_steps(step, steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n{CASES[name][0]}: {info['precision']}, channels_last {info['channels_last']}, compile "
          f"{info['compiled']}; {1e3 * wall:.0f} ms wall, {1e3 * cpu:.0f} ms CPU per step under the "
          f"profiler, load {load():.1f}; shares of the profiled CPU time:")
    seen = set()
    for label, names in PROFILE_GROUPS:
        picked = [e for e in events if e.key in names or any(
            n.endswith("*") and e.key.startswith(n[:-1]) for n in names)]
        seen.update(e.key for e in picked)
        print(f"  {label:<48} {sum(e.self_cpu_time_total for e in picked) / total:6.1%}")
    rest = [e for e in events if e.key not in seen]
    print(f"  {'the rest: dispatch, autograd, allocation':<48} {sum(e.self_cpu_time_total for e in rest) / total:6.1%}"
          f"  (largest: {', '.join(e.key for e in sorted(rest, key=lambda e: -e.self_cpu_time_total)[:4])})")
    print(f"  data loader (uint8 -> normalised, crop, flip)    {loader_ms:.1f} ms CPU per batch "
          f"({loader_ms / (1e3 * cpu):.1%} of a step), outside the step")


KINDS = ("plain", "skiplab", "plain+retain")


def run_case(name: str, rounds: int, steps: int, compile_mode: str = "auto", threads: int = 0) -> dict:
    """Rounds alternate the kinds (one process each, only one running at a time)."""
    ctx = mp.get_context("spawn")
    procs, conns, infos = {}, {}, {}
    try:
        for kind in KINDS:    # started one after another: warm-ups do not overlap
            conns[kind], child = ctx.Pipe()
            procs[kind] = ctx.Process(target=worker, args=(kind, name, compile_mode, threads, child))
            procs[kind].start()
            infos[kind] = conns[kind].recv()
        times = {kind: [] for kind in KINDS}
        for _ in range(rounds):
            for kind in KINDS:
                conns[kind].send(steps)
                times[kind].append(conns[kind].recv())
    finally:
        for kind, proc in procs.items():
            if proc.is_alive():
                conns[kind].send(None)
            proc.join()
    if infos["plain"]["params"] != infos["skiplab"]["params"]:
        raise RuntimeError(f"{name}: baseline has {infos['plain']['params']:,} parameters, "
                           f"skiplab {infos['skiplab']['params']:,}")
    batch = CASES[name][2]

    def median(kind: str, field: int) -> float:
        return statistics.median(t[field] for t in times[kind])

    def ratios(kind: str, field: int = 0) -> list[float]:
        return [b[field] / s[field] for b, s in zip(times[kind], times["skiplab"])]

    return dict(name=name, model=CASES[name][0], batch=batch, side=CASES[name][3],
                flops=infos["plain"]["flops"], **{k: infos["skiplab"][k] for k in
                                                   ("params", "precision", "channels_last", "compiled", "warmup_s")},
                ips={kind: batch / median(kind, 0) for kind in KINDS},
                cpu_ips={kind: batch / median(kind, 1) for kind in KINDS},
                faults={kind: median(kind, 2) for kind in KINDS},
                loads={kind: [t[3] for t in times[kind]] for kind in KINDS},
                speedup=statistics.median(ratios("plain")), ratios=ratios("plain"),
                cpu_speedup=statistics.median(ratios("plain", 1)),
                retain_speedup=statistics.median(ratios("plain+retain")))


def load_range(loads: list[float]) -> str:
    return f"load {min(loads):.1f}-{max(loads):.1f}" if max(loads) - min(loads) >= 0.05 else f"load {loads[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"], choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing round")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default, as the engine's num_threads 0)")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                        help="skiplab's compile setting (default: auto, the default step)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: the default step's CPU time by kind of op (torch.profiler)")
    args = parser.parse_args()
    if args.profile:    # in this process (the default step sets retain_memory itself)
        if args.threads:
            torch.set_num_threads(args.threads)
        for name in args.models:
            profile_step(name, args.compile, args.steps)
        return

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    # the reference peak is the matmul in the precision the default step runs in
    precision = resolve_precision("auto", torch.device("cpu"))
    start_load = load()
    peaks = {"fp32": matmul_gflops(torch.float32)}
    if cpu_supports_bf16():
        peaks["bf16"] = matmul_gflops(torch.bfloat16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; matmul 2048^2 "
          f"(best of 30, wall / CPU time): " + ", ".join(f"{k} {w:.0f} / {c:.0f} GFLOP/s" for k, (w, c) in peaks.items())
          + ("" if "bf16" in peaks else " (no avx512_bf16/amx_bf16: bf16 is emulated, the default step runs fp32)")
          + f"; load {start_load:.1f} -> {load():.1f}")
    ref = "bf16" if precision == "bf16" else "fp32"
    print(f"shares below are of the {ref} peak (the default step's precision); wall-clock figures are what "
          f"a user sees, CPU-time figures what load from other processes distorts least")
    targets = {"resnet56": 2.5, "resnet50": 2.7}
    labels = {"plain": "plain PyTorch eager fp32 NCHW", "skiplab": "skiplab default step",
              "plain+retain": "the plain script, retain_memory"}
    for name in args.models:
        r = run_case(name, args.rounds, args.steps, args.compile, args.threads)
        gflop = r["flops"] / 1e9
        print(f"\n{r['model']} (batch {r['batch']}, {r['side']}x{r['side']}, {r['params']:,} params, "
              f"{gflop / r['batch']:.2f} GFLOP per image per train step)")
        for kind in KINDS:
            gf, cpu_gf = (gflop * ips[kind] / r["batch"] for ips in (r["ips"], r["cpu_ips"]))
            extra = (f"  [{r['precision']}, channels_last {r['channels_last']}, compile {r['compiled']}, "
                     f"warm-up {r['warmup_s']:.0f} s]") if kind == "skiplab" else ""
            print(f"  {labels[kind]:<32}: {r['ips'][kind]:7.1f} img/s {gf:6.1f} GFLOP/s ({gf / peaks[ref][0]:5.1%}); "
                  f"by CPU time {r['cpu_ips'][kind]:7.1f} img/s {cpu_gf:6.1f} GFLOP/s ({cpu_gf / peaks[ref][1]:5.1%}); "
                  f"{r['faults'][kind]:6.0f} page faults per step; {load_range(r['loads'][kind])}{extra}")
        target = targets.get(name) if r["precision"] == "bf16" else None
        verdict = ("no target set" if name not in targets else "no target for an fp32 step" if target is None else
                   f"{'meets' if r['speedup'] >= target else 'MISSES'} the {target}x target")
        rounds = ", ".join(f"{q:.2f} (load {lo:.1f})" for q, lo in zip(r["ratios"], r["loads"]["skiplab"]))
        print(f"  speed-up {r['speedup']:.2f}x (median of rounds {rounds}); {verdict}; by CPU time "
              f"{r['cpu_speedup']:.2f}x; {r['retain_speedup']:.2f}x against the plain script with retain_memory")


if __name__ == "__main__":
    main()
