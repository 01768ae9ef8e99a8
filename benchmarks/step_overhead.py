"""Fixed cost of es_opt's serial step per evaluation, against the objective's own time.

    python benchmarks/step_overhead.py

A 4-16-2 MLP and an objective of one forward pass (~0.05 ms), 100 evaluations per generation:
the difference between a generation's wall time and 100 calls of the objective alone is what the
library adds per evaluation (drawing ε, loading the member, checking the score, the estimate and
the optimizer step, amortised).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective


class OneForward(Objective):
    def __call__(self, model, samples):
        return float(model(torch.ones(1, 4)).sum())


def main(generations: int = 30, n_samples: int = 100) -> None:
    torch.set_num_threads(1)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    es = ESOptimizer(Model(net), objective_fn=OneForward(), sigma=0.05, n_samples=n_samples)
    es.gradient_step()  # warm-up (builds the evaluator, imports lazily loaded torch parts)
    start = time.perf_counter()
    for _ in range(generations):
        es.gradient_step()
    per_generation = (time.perf_counter() - start) / generations
    objective, model = OneForward(), Model(net)
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(generations * n_samples):
            objective(model, None)
    per_call = (time.perf_counter() - start) / (generations * n_samples)
    overhead = (per_generation - n_samples * per_call) / n_samples
    print(f"generation {per_generation * 1e3:.2f} ms for {n_samples} evaluations")
    print(f"objective alone {per_call * 1e6:.1f} us per call")
    print(f"es_opt overhead {overhead * 1e6:.1f} us per evaluation")


if __name__ == "__main__":
    main()
