"""EvoTorch's PGPE (with ClipUp) on every task, so that es_opt's PGPE meets it everywhere.

- CartPole-v1 and Pendulum-v1: exactly the ``evotorch`` side (which already runs PGPE there).
- Digits: the ``evotorch`` side's vectorised raw-accuracy problem (64-32-10 tanh, full training
  set, ``torch.func.vmap``) with PGPE instead of SNES, on the RL recipe of EvoTorch's
  documentation (ClipUp ``max_speed`` 0.15, centre lr 0.75 × max_speed, ``radius_init`` 2.25,
  ``stdev_learning_rate`` 0.1, ``stdev_max_change`` 0.2, centred ranking, symmetric sampling)
  and the ``evotorch`` side's digits popsize (60). ``radius_init`` 2.25 is σ ≈ 0.046 per
  parameter here (EvoJAX's PGPE MNIST benchmark starts at 0.04).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from benchmarks.peers import evotorch_side, tasks

SIDE = "evotorch-pgpe"

PGPE_DIGITS = {
    **{k: v for k, v in evotorch_side.PGPE_CARTPOLE.items() if k not in ("network", "problem")},
    "popsize": 60,
    "objective": evotorch_side.SNES_DIGITS["objective"],
    "network": evotorch_side.SNES_DIGITS["network"],
}
SETTINGS = {
    tasks.CARTPOLE: evotorch_side.PGPE_CARTPOLE,
    tasks.PENDULUM: evotorch_side.PGPE_PENDULUM,
    tasks.DIGITS: PGPE_DIGITS,
}


def _make_pgpe_digits(problem, cfg: dict[str, Any], init: torch.Tensor):
    from evotorch.algorithms import PGPE

    return PGPE(
        problem,
        popsize=cfg["popsize"],
        center_learning_rate=cfg["center_learning_rate"],
        stdev_learning_rate=cfg["stdev_learning_rate"],
        stdev_max_change=cfg["stdev_max_change"],
        radius_init=cfg["radius_init"],
        optimizer="clipup",
        optimizer_config={"max_speed": cfg["max_speed"]},
        ranking_method=cfg["ranking_method"],
        symmetric=cfg["symmetric"],
        center_init=init,
    )


def run_digits(seed: int, budget_s: float) -> dict:
    return evotorch_side._run_digits(seed, budget_s, PGPE_DIGITS, _make_pgpe_digits)


RUNNERS = {
    tasks.CARTPOLE: evotorch_side.run_cartpole,
    tasks.DIGITS: run_digits,
    tasks.PENDULUM: evotorch_side.run_pendulum,
}
version = evotorch_side.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=tasks.TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None)
    args = parser.parse_args()
    budget = args.budget or tasks.BUDGETS[args.task].budget_s
    print(json.dumps(RUNNERS[args.task](args.seed, budget), indent=1))


if __name__ == "__main__":
    main()
