"""Learning with dense against low-rank perturbations on digits (raw accuracy, no gradient).

    python benchmarks/perturbations_learning.py --part digits --seeds 0 1 2 3 4
    python benchmarks/perturbations_learning.py --part large --seeds 0

``digits``: a 64-256-256-10 tanh MLP (85k parameters) trained on scikit-learn's 8×8 digits by
raw training accuracy on 512 training images per generation (a minibatch drawn from the seed and
the generation), σ = 0.1, 200 evaluations per generation, Adam with lr 0.05 decayed (cosine over
150 generations) to 0.005; the test accuracy of the center is checked every 5 generations, and
the run stops at 96 % or after 300 generations (goal: low-rank within 1.5× the generations of
dense).

``large``: a 64-1024-960-10 MLP (1.06M parameters), same settings but 256 training images and
100 evaluations per generation; the wall time until the test accuracy first reaches 95 % (goal:
low-rank faster).

Both families run the same seeds (same initial weights, same minibatches); one thread.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
from torch import nn

from es_opt import ESOptimizer
from es_opt.perturbations import LowRank
from es_opt.supervised import Accuracy
from es_opt.supervised.datasets import load_digits

PARTS = {
    # hidden sizes, target test accuracy, training images per generation (0: all), evaluations
    # per generation, generations at most
    "digits": ((256, 256), 0.96, 512, 200, 300),
    "large": ((1024, 960), 0.95, 256, 100, 200),
}


def build_net(hidden: tuple[int, ...], seed: int) -> nn.Sequential:
    torch.manual_seed(seed)  # the initial weights belong to the seed
    sizes = (64, *hidden, 10)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def run(
    family, part: str, seed: int, max_generations: int = 0, eval_every: int = 5
) -> tuple[int | None, float, float, float]:
    """(generation at which the test accuracy first reached the target or None, the wall time
    and the process's CPU time until then (or of the whole run), the last test accuracy). With
    one thread the CPU time is the compute time, whatever else runs on the machine."""
    hidden, target, batch, n_samples, generations = PARTS[part]
    generations = max_generations or generations
    train, test = load_digits(seed=0)
    net = build_net(hidden, seed)
    lr = 0.05
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    es = ESOptimizer(
        net,
        optimizer,
        objective_fn=Accuracy(),
        sigma=0.1,
        n_samples=n_samples,
        seed=seed,
        perturbation=family,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    accuracy = 0.0
    for generation in range(generations):
        scale = 0.1 + 0.9 * (1 + math.cos(math.pi * min(generation, 150) / 150)) / 2
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        samples = train.minibatch(batch, seed, generation) if batch else train
        es.gradient_step(samples)
        if (generation + 1) % eval_every == 0:
            with torch.no_grad():
                logits = net(test.inputs)
            accuracy = float((logits.argmax(1) == test.targets).float().mean())
            if accuracy >= target:
                break
            if (generation + 1) % 25 == 0:
                print(
                    f"  generation {generation + 1}: test accuracy {accuracy:.4f}, "
                    f"{time.process_time() - cpu_start:.1f} s CPU",
                    flush=True,
                )
    else:
        generation = None
    reached = None if generation is None else generation + 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return reached, wall, cpu, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), default="digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--families", nargs="+", default=["dense", "lowrank"])
    parser.add_argument("--rank", type=int, default=1, help="rank of the low-rank family")
    parser.add_argument(
        "--generations", type=int, default=0, help="at most this many (0: the part's default)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"part {args.part}, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    results: dict[str, list] = {}
    for seed in args.seeds:
        for name in args.families:
            family = LowRank(args.rank) if name == "lowrank" else name
            reached, wall, cpu, accuracy = run(family, args.part, seed, args.generations)
            results.setdefault(name, []).append((reached, cpu))
            print(
                f"seed {seed} {family} reached at generation {reached} in {wall:.1f} s wall, "
                f"{cpu:.1f} s CPU (last test accuracy {accuracy:.4f}), "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    for name, rows in results.items():
        gens = [g for g, _ in rows if g is not None]
        times = [t for g, t in rows if g is not None]
        summary = (
            f"median {statistics.median(gens)} generations, {statistics.median(times):.1f} s CPU"
            if gens
            else "never"
        )
        print(f"{name}: reached on {len(gens)}/{len(rows)} seeds; {summary}")


if __name__ == "__main__":
    main()
