"""Per-step CPU time of RangerLite, Ligi and ClipUp against torch's RAdam and fused Adam.

Shapes: (a) the parameters of an MLP 784-1024-256-10 (1.07M parameters in 6 tensors) and
(b) 100 tensors of 100x1000 (10M parameters). Every optimizer is timed in the same run, round
robin (so slow drifts of the machine hit all of them alike); the table shows the median ms/step
and the ratio to the faster of torch's two RAdam paths.

"torch radam + Lookahead" is RangerLite's update written on torch's functional
``torch.optim.radam.radam`` (same bits as RangerLite with the same ``foreach``, checked before
timing): the alternative to RangerLite's own kernel. The last lines give the speed-up of the own
kernel over it for each path; the kernel is kept only while that is >= 1.2 on these shapes.

    python benchmarks/optimizer_step.py            # full run
    python benchmarks/optimizer_step.py --quick    # a few repeats, for a smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.radam import radam

from es_opt.optim import ClipUp, Ligi, RangerLite
from es_opt.optim._kernels import lookahead_sync

SHAPES = {
    "a: MLP 784-1024-256-10": [(1024, 784), (1024,), (256, 1024), (256,), (10, 256), (10,)],
    "b: 100 x (100x1000)": [(100, 1000)] * 100,
}


@dataclass
class Args:
    quick: bool = False  # few repeats: checks that the script runs, not a measurement
    repeats: int = 30  # timed steps per optimizer (median reported)
    warmup: int = 10  # untimed steps first (also moves RAdam past its un-rectified phase)


def make_params(shapes: list[tuple[int, ...]], seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=generator).requires_grad_()
        p.grad = torch.randn(shape, generator=generator) * 1e-2
        params.append(p)
    return params


class TorchRadamRanger:
    """RangerLite's default update (lr 1e-3, betas (0.95, 0.999), eps 1e-5, Lookahead 6 / 0.5)
    on torch's functional RAdam, with the least overhead around it (no param groups, no checks)."""

    def __init__(self, params: list[torch.Tensor], foreach: bool) -> None:
        self.params = params
        self.foreach = foreach
        self.exp_avgs = [torch.zeros_like(p) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
        self.steps = [torch.tensor(0.0) for _ in params]
        self.slows = [p.detach().clone() for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        radam(
            self.params,
            [p.grad for p in self.params],
            self.exp_avgs,
            self.exp_avg_sqs,
            self.steps,
            decoupled_weight_decay=True,
            foreach=self.foreach,
            beta1=0.95,
            beta2=0.999,
            lr=1e-3,
            weight_decay=0.0,
            eps=1e-5,
        )
        self.t += 1
        if self.t % 6 == 0:
            lookahead_sync(self.params, self.slows, 0.5)


def optimizers() -> dict[str, Callable[[list[torch.Tensor]], Any]]:
    radam_options = {"betas": (0.95, 0.999), "eps": 1e-5, "decoupled_weight_decay": True}
    return {
        "torch RAdam foreach": lambda ps: torch.optim.RAdam(ps, foreach=True, **radam_options),
        "torch RAdam for-loop": lambda ps: torch.optim.RAdam(ps, foreach=False, **radam_options),
        "torch Adam fused": lambda ps: torch.optim.Adam(ps, fused=True),
        "RangerLite (default)": lambda ps: RangerLite(ps),
        "RangerLite foreach=False": lambda ps: RangerLite(ps, foreach=False),
        "RangerLite foreach=True": lambda ps: RangerLite(ps, foreach=True),
        "torch radam + Lookahead, for-loop": lambda ps: TorchRadamRanger(ps, foreach=False),
        "torch radam + Lookahead, foreach": lambda ps: TorchRadamRanger(ps, foreach=True),
        "Ligi": lambda ps: Ligi(ps),
        "ClipUp": lambda ps: ClipUp(ps),
    }


# (own kernel, the same arithmetic on torch's functional radam)
KERNEL_PAIRS = {
    "for-loop (CPU default)": ("RangerLite foreach=False", "torch radam + Lookahead, for-loop"),
    "foreach": ("RangerLite foreach=True", "torch radam + Lookahead, foreach"),
}


def check_same_bits(steps: int = 13) -> None:
    """RangerLite and its torch-radam twin give identical parameters (else timing them is moot)."""
    for foreach in (False, True):
        ours, theirs = make_params([(300, 7), (70_000,)]), make_params([(300, 7), (70_000,)])
        a, b = RangerLite(ours, foreach=foreach), TorchRadamRanger(theirs, foreach=foreach)
        for _ in range(steps):
            a.step()
            b.step()
        if not all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True)):
            raise AssertionError(f"RangerLite(foreach={foreach}) differs from torch radam")


def measure(shapes: list[tuple[int, ...]], args: Args) -> dict[str, float]:
    """Median seconds per step of each optimizer, each on its own copy of the parameters."""
    runs = {}
    for name, build in optimizers().items():
        params = make_params(shapes)
        runs[name] = build(params)
    for opt in runs.values():
        for _ in range(args.warmup):
            opt.step()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, opt in runs.items():
            start = time.perf_counter()
            opt.step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few repeats only (smoke test)")
    parser.add_argument("--repeats", type=int, default=Args.repeats, help="timed steps")
    parser.add_argument("--warmup", type=int, default=Args.warmup, help="untimed steps first")
    ns = parser.parse_args()
    args = Args(
        quick=ns.quick, repeats=3 if ns.quick else ns.repeats, warmup=7 if ns.quick else ns.warmup
    )

    check_same_bits()
    all_threads = torch.get_num_threads()
    speedups = []
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, median of {args.repeats} steps after {args.warmup} warm-up\n"
    )
    header = "| threads | shape | optimizer | ms/step | vs faster torch RAdam |"
    print(header)
    print("|---|---|---|---|---|")
    for threads in sorted({1, all_threads}):
        torch.set_num_threads(threads)
        for shape_name, shapes in SHAPES.items():
            seconds = measure(shapes, args)
            reference = min(seconds["torch RAdam foreach"], seconds["torch RAdam for-loop"])
            for name, value in seconds.items():
                print(
                    f"| {threads} | {shape_name} | {name} | {value * 1e3:.2f} "
                    f"| {value / reference:.2f} |"
                )
            for path, (own, twin) in KERNEL_PAIRS.items():
                speedups.append((threads, shape_name, path, seconds[twin] / seconds[own]))
    torch.set_num_threads(all_threads)
    print("\nRangerLite's own kernel vs the same update on torch's functional radam (same bits):\n")
    print("| threads | shape | path | speed-up of the own kernel |")
    print("|---|---|---|---|")
    for threads, shape_name, path, speedup in speedups:
        print(f"| {threads} | {shape_name} | {path} | {speedup:.2f} |")


if __name__ == "__main__":
    main()
