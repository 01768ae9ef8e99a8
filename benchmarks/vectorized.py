"""Vectorised against one-at-a-time evaluation, and the supervised sample's time to 96 %.

    python benchmarks/vectorized.py            # both parts (~5 minutes on 2 idle cores)
    python benchmarks/vectorized.py --quick    # fewer repeats and seeds

Part 1 — evaluations per second of a population of 200 digits MLPs (64-32-10 and 64-128-10) on a
minibatch of 64 images and on the full training set (1,438 images), evaluated one member at a time
(``Accuracy(vectorize=False)``) and vectorised (``Accuracy()``), with the serial backend and with
``multiprocess`` and 2 workers, all in one run; the ratio is the speed-up of the vectorised path.

Part 2 — the wall time until the test accuracy first reaches 96 % with the default settings of
``sample_scripts/supervised.py`` (raw accuracy, full batch), for seeds 0-4, each in a fresh
process; the script reports the time since its training loop started.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import es_opt
from es_opt.evaluators import make_evaluator
from es_opt.supervised import Accuracy
from es_opt.supervised.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]
POPULATION = 200


def evals_per_second(hidden, samples, *, vectorize, backend, repeats) -> float:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))
    objective = Accuracy(vectorize=vectorize)
    es = es_opt.ESOptimizer(net, objective_fn=objective, n_samples=POPULATION)
    options = {"n_workers": 2} if backend == "multiprocess" else {}
    evaluator = make_evaluator(backend, **options)
    evaluator.bind(es.model, objective)
    try:
        population = es.ask()
        evaluator.evaluate(population, samples)  # warm-up: workers started, kernels chosen
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            evaluator.evaluate(population, samples)
            times.append(time.perf_counter() - start)
    finally:
        evaluator.close()
    return POPULATION / statistics.median(times)


def throughput(repeats: int) -> None:
    train, _ = load_digits(seed=0)
    print(f"Part 1: evaluations/s, population {POPULATION} (median of {repeats})")
    print(f"{'net':>9} {'batch':>6} {'backend':>14} {'one-at-a-time':>14} {'vectorised':>11} ratio")
    for hidden in (32, 128):
        for batch in (64, len(train)):
            samples = train.minibatch(batch, seed=0, generation=0)
            for backend in ("serial", "multiprocess"):
                one = evals_per_second(
                    hidden, samples, vectorize=False, backend=backend, repeats=repeats
                )
                vec = evals_per_second(
                    hidden, samples, vectorize=True, backend=backend, repeats=repeats
                )
                label = "2 workers" if backend == "multiprocess" else "serial"
                print(
                    f"64-{hidden}-10 {batch:>6} {label:>14} {one:>14.0f} {vec:>11.0f} "
                    f"{vec / one:5.1f}x",
                    flush=True,
                )


def time_to_96(seeds: list[int]) -> None:
    print("\nPart 2: sample_scripts/supervised.py with its defaults, time to 96 % test accuracy")
    reached = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, str(ROOT / "sample_scripts" / "supervised.py"),
                       "--seed", str(seed), "--quiet", "--out", out]  # fmt: skip
            env = {**os.environ, "MPLBACKEND": "Agg"}
            text = subprocess.run(
                command, capture_output=True, text=True, check=True, env=env
            ).stdout
        final = re.search(
            r"test accuracy (\S+) after (\d+) generations, (\d+) evaluations, (\S+) s", text
        )
        milestone = re.search(r"reached 96% at generation (\d+), (\S+) s", text)
        if milestone:
            reached.append(float(milestone.group(2)))
        when = f"{milestone.group(2)} s (generation {milestone.group(1)})" if milestone else "never"
        print(
            f"seed {seed}: 96 % after {when}; final {final.group(1)} after {final.group(2)} "
            f"generations, {final.group(4)} s",
            flush=True,
        )
    if reached:
        print(
            f"reached 96 % in {len(reached)}/{len(seeds)} runs; median "
            f"{statistics.median(reached):.1f} s, max {max(reached):.1f} s (goal: <= 10 s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, seeds 0-1")
    parser.add_argument("--part", choices=("all", "throughput", "time"), default="all")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:  # contended OpenMP threads can slow small matrix products by 10x or more
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    if args.part in ("all", "throughput"):
        throughput(3 if args.quick else 7)
    if args.part in ("all", "time"):
        time_to_96([0, 1] if args.quick else [0, 1, 2, 3, 4])
    return 0


if __name__ == "__main__":
    sys.exit(main())
