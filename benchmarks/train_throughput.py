"""Training-step throughput: skiplab's default step against plain PyTorch, in one run.

For CIFAR ResNet-56 (batch 128, 32x32) and ResNet-50 (batch 16, 224x224) it times

* baseline: the identical architecture written below in plain PyTorch (torchvision-style
  code), eager fp32, NCHW, SGD -- what a straightforward training script does;
* skiplab: ``Trainer.train_step`` with the default config (precision auto = bf16 on CPUs
  with avx512_bf16, channels_last, ``compile: auto``), i.e. exactly the step ``fit`` runs.

Rounds alternate the two so that load from other processes hits both alike; the speed-up
is the median of the per-round ratios. Achieved GFLOP/s (forward + backward FLOPs counted
by ``torch.utils.flop_counter``) is printed as a fraction of the bf16 matmul throughput
measured in the same run. Targets on a 2-core EPYC: >= 2.5x (ResNet-56), >= 2.7x (ResNet-50).

    python benchmarks/train_throughput.py [--models resnet56 resnet50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from skiplab.data import ImageDataset
from skiplab.train import TrainConfig, Trainer


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
    "resnet56": ("cifar_resnet56", lambda: CifarResNet(9, 10), 128, 32, 10),
    "resnet50": ("resnet50", lambda: ResNet50(1000), 16, 224, 1000),
}


# ---- measurements ------------------------------------------------------------------------
def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 30) -> float:
    """Best-of-``reps`` throughput of an n x n matmul (the best rep is the least disturbed)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def baseline_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def time_steps(step, n: int) -> tuple[float, float]:
    """(wall-clock, process CPU time) per step. CPU time is what load from other processes
    distorts least; with one thread it is the cleanest comparison on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def run_case(name: str, rounds: int, steps: int, compile_mode: str = "auto") -> dict:
    model_name, make_baseline, batch, side, classes = CASES[name]
    # a random in-memory dataset of two batches; the compile policy sees a long run (steps)
    images = torch.randint(0, 256, (2 * batch, 3, side, side), dtype=torch.uint8)
    labels = torch.arange(2 * batch) % classes
    data = ImageDataset(images, labels, [str(i) for i in range(classes)], (0.5,) * 3, (0.25,) * 3,
                        f"random-{side}px")
    config = TrainConfig(model=model_name, batch_size=batch, steps=10_000, eval_split="none",
                         progress=False, out=None, lr=0.01, weight_decay=1e-4, compile=compile_mode)
    trainer = Trainer(config, train_set=data)
    x, y = next(iter(trainer.train_loader))

    base = make_baseline().train()
    n_base = sum(p.numel() for p in base.parameters())
    n_skip = sum(p.numel() for p in trainer.model.parameters())
    if n_base != n_skip:
        raise RuntimeError(f"{name}: baseline has {n_base:,} parameters, skiplab {n_skip:,}")
    base_opt = torch.optim.SGD(base.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    xb = x.contiguous()   # NCHW fp32

    with FlopCounterMode(display=False) as counter:
        baseline_step(base, base_opt, xb, y)
    flops = counter.get_total_flops()

    t = time.perf_counter()
    for _ in range(3):    # warm-up (and compilation when compile is on)
        trainer.train_step(x, y)
    warmup_s = time.perf_counter() - t
    baseline_step(base, base_opt, xb, y)

    ratios, cpu_ratios, t_base, t_skip = [], [], [], []
    for _ in range(rounds):
        tb, cb = time_steps(lambda: baseline_step(base, base_opt, xb, y), steps)
        ts, cs = time_steps(lambda: trainer.train_step(x, y), steps)
        t_base.append(tb)
        t_skip.append(ts)
        ratios.append(tb / ts)
        cpu_ratios.append(cb / cs)
    trainer.close()
    return dict(name=name, model=model_name, batch=batch, side=side, params=n_skip,
                precision=trainer.precision.name, channels_last=config.channels_last,
                compiled=trainer.compiled, warmup_s=warmup_s, flops=flops,
                base_ips=batch / statistics.median(t_base), skip_ips=batch / statistics.median(t_skip),
                speedup=statistics.median(ratios), ratios=ratios,
                cpu_speedup=statistics.median(cpu_ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                        help="skiplab's compile setting (default: auto, the default step)")
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    peak_bf16 = matmul_gflops(torch.bfloat16)
    peak_fp32 = matmul_gflops(torch.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul 2048^2: "
          f"bf16 {peak_bf16:.0f} GFLOP/s, fp32 {peak_fp32:.0f} GFLOP/s")
    targets = {"resnet56": 2.5, "resnet50": 2.7}
    for name in args.models:
        r = run_case(name, args.rounds, args.steps, args.compile)
        gflop = r["flops"] / 1e9
        base_gf, skip_gf = gflop * r["base_ips"] / r["batch"], gflop * r["skip_ips"] / r["batch"]
        print(f"\n{r['model']} (batch {r['batch']}, {r['side']}x{r['side']}, {r['params']:,} params, "
              f"{gflop / r['batch']:.2f} GFLOP per image per train step)")
        print(f"  plain PyTorch eager fp32 NCHW : {r['base_ips']:7.1f} img/s  {base_gf:6.1f} GFLOP/s "
              f"({base_gf / peak_bf16:5.1%} of bf16 matmul peak)")
        print(f"  skiplab default step          : {r['skip_ips']:7.1f} img/s  {skip_gf:6.1f} GFLOP/s "
              f"({skip_gf / peak_bf16:5.1%} of bf16 matmul peak)  [{r['precision']}, channels_last "
              f"{r['channels_last']}, compile {r['compiled']}, warm-up {r['warmup_s']:.0f} s]")
        verdict = "meets" if r["speedup"] >= targets[name] else "MISSES"
        print(f"  speed-up {r['speedup']:.2f}x (median of rounds {', '.join(f'{q:.2f}' for q in r['ratios'])}); "
              f"{verdict} the {targets[name]}x target; by CPU time {r['cpu_speedup']:.2f}x")


if __name__ == "__main__":
    main()
