"""EvoTorch's SNES on every task, so that es_opt's SNES meets it everywhere.

- Digits: exactly the ``evotorch`` side (which already runs SNES there).
- CartPole-v1 and Pendulum-v1: the ``evotorch`` side's problem (``VecGymNE``, the same policy
  network and observation normalisation, in-process) with SNES instead of PGPE: SNES's default
  learning rates (centre 1, σ ``0.2 (3 + ln d)/√d``, the paper's), the PGPE recipe's popsize
  (100 and 40) and initial radius (2.25, as EvoTorch's supervised neuroevolution guide gives
  SNES), NES utilities (EvoTorch's default ranking for SNES). EvoTorch documents no SNES example
  for gym tasks.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.peers import evotorch_side, tasks

SIDE = "evotorch-snes"

_GYM_KEYS = ("network", "observation_normalization", "problem")
SNES_CARTPOLE = {
    "algorithm": "SNES",
    "popsize": evotorch_side.PGPE_CARTPOLE["popsize"],
    "radius_init": evotorch_side.PGPE_CARTPOLE["radius_init"],
    "center_learning_rate": "default (1.0)",
    "stdev_learning_rate": "default (0.2 (3 + ln d) / sqrt d)",
    "ranking_method": "nes",
    **{k: evotorch_side.PGPE_CARTPOLE[k] for k in _GYM_KEYS},
}
SNES_PENDULUM = {**SNES_CARTPOLE, "popsize": evotorch_side.PGPE_PENDULUM["popsize"]}
SETTINGS = {
    tasks.CARTPOLE: SNES_CARTPOLE,
    tasks.PENDULUM: SNES_PENDULUM,
    tasks.DIGITS: evotorch_side.SNES_DIGITS,
}


def _make_snes(problem, cfg: dict[str, Any]):
    from evotorch.algorithms import SNES

    return SNES(problem, popsize=cfg["popsize"], radius_init=cfg["radius_init"])


def run_cartpole(seed: int, budget_s: float) -> dict:
    tracker = tasks.CartPoleTracker(budget_s)
    return evotorch_side._run_gym(
        tasks.CARTPOLE, tasks.CARTPOLE_ENV, tracker, SNES_CARTPOLE, seed, _make_snes
    )


def run_pendulum(seed: int, budget_s: float) -> dict:
    tracker = tasks.PendulumTracker(budget_s)
    return evotorch_side._run_gym(
        tasks.PENDULUM, tasks.PENDULUM_ENV, tracker, SNES_PENDULUM, seed, _make_snes
    )


RUNNERS = {
    tasks.CARTPOLE: run_cartpole,
    tasks.DIGITS: evotorch_side.run_digits,
    tasks.PENDULUM: run_pendulum,
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
