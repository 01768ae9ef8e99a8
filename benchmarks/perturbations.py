"""Dense against low-rank perturbations, and counter-based against per-pair MT19937 noise.

    python benchmarks/perturbations.py                 # every part (~5 minutes on 2 idle cores)
    python benchmarks/perturbations.py --repeats 3 --parts 13

One thread (``torch.set_num_threads(1)``); every ratio compares numbers measured in this run.
Medians of the repeats, in CPU time of the process (see :func:`median_time`). Parts:

1. noise cost per pair (both members of a pair share it): drawing 100 pairs' noise with today's
   dense MT19937 (one generator per pair) against low-rank rank-1 (Philox, all pairs in one
   call), divided by 100, for the digits MLPs 64-32-10 and 64-128-10 and for 784-1024-256-10
   (1.07M parameters). Goals: ≥ 30× and ≥ 500× lower.
2. the generator choice: dense noise for 100 pairs at 1k, 100k and 1M parameters with per-pair
   MT19937, with Philox4x32-10 in torch integer operations (one call), and with NumPy's
   Philox4x64 (one generator per pair). Goal: Philox no slower than MT19937.
3. population evaluation, 784-1024-256-10, 256 members × 64 inputs each: evaluations/s of the
   dense vectorised path, of the low-rank shared-base path, and one plain batched forward of the
   same 16,384 rows with the unperturbed weights. Goals: low-rank ≥ 4× dense, ≥ 80 % of plain.
4. driver cost of one generation at 1.07M parameters and 1,000 evaluations (shaping, estimate,
   RangerLite step): dense against low-rank. Goal: low-rank ≤ 5 % of dense.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch import nn

from es_opt import ESOptimizer, noise
from es_opt.distributions import openai_es_gradient
from es_opt.evaluators.batched import evaluate_population_indices
from es_opt.perturbations import LowRank, counter_normals
from es_opt.shaping import centered_ranks

PAIRS = 100


def median_time(fn, repeats: int, *args) -> float:
    """Median CPU time of the process (``time.process_time``) per call: with one thread it is the
    compute time, and it does not count the time slices other processes take on a loaded
    machine (wall time there grew by up to 10× on small calls)."""
    fn(*args)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(*args)
        times.append(time.process_time() - start)
    return statistics.median(times)


class Generations:
    """A fresh generation number per call, so no cached seed is reused between repeats."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return self.count


def dense_mt19937(generations: Generations, dim: int) -> torch.Tensor:
    return noise.perturbations(0, generations(), range(PAIRS), dim)


def low_rank_noise(generations: Generations, shapes, ids) -> list[torch.Tensor]:
    return LowRank(1).draw(0, generations(), range(PAIRS), shapes, ids)


def philox_dense(dim: int) -> list[torch.Tensor]:
    return counter_normals(0, 1, range(PAIRS), [dim])


def mlp(*sizes: int) -> nn.Sequential:
    torch.manual_seed(0)  # the benchmark's weights; the library draws nothing from it
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def shapes_of(net: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in net.parameters()]


def part1(repeats: int) -> None:
    print("\n## 1. Noise cost per pair (100 pairs drawn in one step; a pair serves two members)")
    print("| net | parameters | dense MT19937 | low-rank r=1 (Philox) | ratio | goal |")
    print("|---|---|---|---|---|---|")
    for sizes, goal in (((64, 32, 10), 30), ((64, 128, 10), 30), ((784, 1024, 256, 10), 500)):
        shapes = shapes_of(mlp(*sizes))
        dim = sum(int(np.prod(s)) for s in shapes)
        ids = list(range(len(shapes)))
        dense = median_time(dense_mt19937, repeats, Generations(), dim)
        low = median_time(low_rank_noise, repeats, Generations(), shapes, ids)
        print(
            f"| {'-'.join(map(str, sizes))} | {dim:,} | {dense / PAIRS * 1e6:.1f} µs | "
            f"{low / PAIRS * 1e6:.2f} µs | **{dense / low:.0f}×** | ≥ {goal}× |"
        )


def numpy_philox(seed: int, generation: int, pairs, dim: int) -> np.ndarray:
    out = np.empty((len(pairs), dim), dtype=np.float32)
    for row, pair in enumerate(pairs):
        bits = np.random.Philox(key=seed, counter=[0, 0, pair, generation])
        np.random.Generator(bits).standard_normal(dim, dtype=np.float32, out=out[row])
    return out


def part2(repeats: int, sizes) -> None:
    print("\n## 2. Dense noise for 100 pairs: per-pair MT19937 against counter-based generators")
    print(
        "| parameters | MT19937 per pair (today) | Philox4x32-10, torch ops, one call | ratio |"
        " NumPy Philox4x64 per pair | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for dim in sizes:
        reps = repeats if dim < 10**6 else max(2, repeats // 2)
        mt = median_time(dense_mt19937, reps, Generations(), dim)
        philox = median_time(philox_dense, reps, dim)
        npx = median_time(numpy_philox, reps, 0, 1, range(PAIRS), dim)
        print(
            f"| {dim:,} | {mt * 1e3:.2f} ms | {philox * 1e3:.2f} ms | **{philox / mt:.2f}×** | "
            f"{npx * 1e3:.2f} ms | {npx / mt:.2f}× |"
        )


class MeanLogit:
    """A vectorised objective on one input batch per member ([B, 64, 784])."""

    def __init__(self, inputs: torch.Tensor, max_batch: int | None):
        self.inputs, self.max_batch = inputs, max_batch

    def __call__(self, model, samples):
        raise NotImplementedError

    def evaluate_population(self, population, samples):
        first = population.indices[0]
        x = self.inputs[first : first + len(population)]
        return population(x, per_member=True).mean(dim=(1, 2))


def part3(repeats: int) -> None:
    print("\n## 3. Population evaluation, 784-1024-256-10, 256 members × 64 inputs each")
    members, rows = 256, 64
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(members, rows, 784, generator=gen)
    results = {}
    net = mlp(784, 1024, 256, 10)
    with torch.no_grad():
        results["plain batched forward (unperturbed)"] = median_time(
            lambda: net(inputs.reshape(-1, 784)), repeats
        )
    for label, family, max_batch in (
        ("dense vectorised (today, automatic batch)", "dense", None),
        ("low-rank r=1, shared base (automatic batch)", LowRank(1), None),
        ("low-rank r=1, shared base, max_batch=256", LowRank(1), 256),
    ):
        objective = MeanLogit(inputs, max_batch)
        es = ESOptimizer(net, objective_fn=objective, n_samples=members, perturbation=family)
        population = es.ask()
        results[label] = median_time(
            evaluate_population_indices,
            repeats,
            es.model,
            objective,
            population,
            None,
            range(members),
        )
    plain = results["plain batched forward (unperturbed)"]
    dense = results["dense vectorised (today, automatic batch)"]
    print("| path | time per population | evaluations/s | vs plain | vs dense |")
    print("|---|---|---|---|---|")
    for label, seconds in results.items():
        print(
            f"| {label} | {seconds * 1e3:.1f} ms | {members / seconds:,.0f} | "
            f"{plain / seconds:.2f} | {dense / seconds:.2f}× |"
        )


def driver_step(es: ESOptimizer, population, fitness: torch.Tensor) -> None:
    """What the main process does with a generation's fitness (``ESOptimizer._apply``)."""
    gradient = openai_es_gradient(centered_ranks(fitness[:, 0]), population)
    params = es.model.named_trainable_parameters()
    for name, g in population.unflatten(-gradient).items():
        params[name].grad = g.clone()
    es.optimizer.step()


def part4(repeats: int) -> None:
    print("\n## 4. Driver cost of one generation, 784-1024-256-10, 1,000 evaluations")
    n_evals = 1000
    fitness = torch.randn(n_evals, 1, generator=torch.Generator().manual_seed(2))
    fitness = fitness.double()
    times = {}
    for label, family in (("dense MT19937 (today)", "dense"), ("low-rank r=1", LowRank(1))):
        es = ESOptimizer(
            mlp(784, 1024, 256, 10),
            objective_fn=lambda m, s: 0.0,
            n_samples=n_evals,
            perturbation=family,
        )
        times[label] = median_time(driver_step, max(2, repeats // 2), es, es.ask(), fitness)
    dense = times["dense MT19937 (today)"]
    print("| family | shaping + estimate + RangerLite step | share of dense |")
    print("|---|---|---|")
    for label, seconds in times.items():
        print(f"| {label} | {seconds * 1e3:.1f} ms | **{seconds / dense * 100:.1f} %** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--parts", default="1234", help="which parts to run, e.g. 13")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = args.repeats
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.2f} at start")
    if "1" in args.parts:
        part1(repeats)
    if "2" in args.parts:
        part2(repeats, (1_000, 100_000, 1_000_000))
    if "3" in args.parts:
        part3(repeats)
    if "4" in args.parts:
        part4(repeats)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
