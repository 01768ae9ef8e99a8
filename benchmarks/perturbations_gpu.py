"""The GPU table: low-rank ES throughput against a plain batched forward, on CUDA.

    python benchmarks/perturbations_gpu.py                  # ~1 minute on one GPU
    python benchmarks/perturbations_gpu.py --population 8192 --rows 8

Without a CUDA device it prints why and exits with status 0 (nothing is measured).

A 1024-2048-2048-2048-1024 tanh MLP (12.6M parameters) on the GPU; every member of a
population of ``--population`` (default 4,096) gets its own ``--rows`` input rows. Measured, with
``torch.cuda.synchronize()`` around each repeat (median of ``--repeats``):

- plain: one forward of all ``population × rows`` rows with the unperturbed weights;
- ES evaluation: :func:`es_opt.evaluators.batched.evaluate_population_indices` with low-rank
  rank-1 members (noise drawn on the device, shared-base forward), all members in one batch;
- noise: drawing the population's low-rank noise alone (Philox on the device);
- a whole ES step (ask, evaluate, estimate, Adam step) with low-rank noise.

Goal (issue): ES throughput ≥ 70 % of the plain batched forward. Dense perturbations are not run
at this size: one stacked copy of the weights per member would need population × 50 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

from es_opt import ESOptimizer, Objective
from es_opt.evaluators.batched import evaluate_population_indices
from es_opt.perturbations import LowRank


class MeanOutput(Objective):
    """Each member's mean output on its own input rows ([population, rows, 1024])."""

    def __init__(self, inputs: torch.Tensor):
        self.inputs, self.max_batch = inputs, inputs.shape[0]

    def __call__(self, model, samples):
        raise NotImplementedError("this benchmark evaluates stacked members only")

    def evaluate_population(self, population, samples):
        first = population.indices[0]
        x = self.inputs[first : first + len(population)]
        return population(x, per_member=True).mean(dim=(1, 2))


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--population", type=int, default=4096)
    parser.add_argument("--rows", type=int, default=16, help="input rows per member")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: the GPU table is not measured on this machine")
        return 0
    device, dtype = torch.device("cuda"), getattr(torch, args.dtype)
    torch.manual_seed(0)  # the benchmark's weights and inputs
    sizes = (1024, 2048, 2048, 2048, 1024)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.Tanh()]
    net = nn.Sequential(*layers[:-1]).to(device, dtype)
    n_params = sum(p.numel() for p in net.parameters())
    inputs = torch.randn(args.population, args.rows, sizes[0], device=device, dtype=dtype)
    objective = MeanOutput(inputs)
    es = ESOptimizer(
        net,
        torch.optim.Adam(net.parameters(), lr=1e-3),
        objective_fn=objective,
        sigma=0.01,
        n_samples=args.population,
        perturbation=LowRank(1),
    )
    population = es.ask()
    flat_inputs = inputs.reshape(-1, sizes[0])
    with torch.no_grad():
        plain = timed(lambda: net(flat_inputs), args.repeats)
    members = range(args.population)
    evaluation = timed(
        lambda: evaluate_population_indices(es.model, objective, population, None, members),
        args.repeats,
    )
    noise = timed(lambda: population.noise(range(args.population // 2)), args.repeats)
    step = timed(lambda: es.gradient_step(), max(2, args.repeats // 2))
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}, {args.dtype}")
    print(
        f"MLP {'-'.join(map(str, sizes))}: {n_params:,} parameters; population "
        f"{args.population} × {args.rows} rows"
    )
    print("| measurement | time | rows/s | vs plain |")
    print("|---|---|---|---|")
    rows = args.population * args.rows
    for label, seconds in (
        ("plain batched forward (unperturbed)", plain),
        ("ES evaluation, low-rank r=1 (noise + shared-base forward)", evaluation),
        ("low-rank noise of the population alone", noise),
        ("whole ES step (ask, evaluate, estimate, Adam)", step),
    ):
        print(
            f"| {label} | {seconds * 1e3:.2f} ms | {rows / seconds:,.0f} | "
            f"**{plain / seconds * 100:.0f} %** |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
