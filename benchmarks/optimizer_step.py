"""Per-step CPU time of RangerLite and Ligi against torch's RAdam (both paths) and fused Adam.

Shapes: (a) the parameters of an MLP 784-1024-256-10 (1.07M parameters in 6 tensors) and
(b) 100 tensors of 100x1000 (10M parameters). Every optimizer is timed in the same run, round
robin (so slow drifts of the machine hit all of them alike); the table shows the median ms/step
and the ratio to the faster of torch's two RAdam paths.

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

import torch

from es_opt.optim import Ligi, RangerLite

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


def optimizers() -> dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]:
    radam = {"betas": (0.95, 0.999), "eps": 1e-5, "decoupled_weight_decay": True}
    return {
        "torch RAdam foreach": lambda ps: torch.optim.RAdam(ps, foreach=True, **radam),
        "torch RAdam for-loop": lambda ps: torch.optim.RAdam(ps, foreach=False, **radam),
        "torch Adam fused": lambda ps: torch.optim.Adam(ps, fused=True),
        "RangerLite (default)": lambda ps: RangerLite(ps),
        "RangerLite foreach=False": lambda ps: RangerLite(ps, foreach=False),
        "Ligi": lambda ps: Ligi(ps),
    }


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

    all_threads = torch.get_num_threads()
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
    torch.set_num_threads(all_threads)


if __name__ == "__main__":
    main()
