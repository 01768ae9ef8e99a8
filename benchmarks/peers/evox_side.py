"""EvoX 1.4 (PyTorch) on every task: its OpenES and SNES (sides ``evox-openes``,
``evox-snes``).

EvoX minimises by default; each run drives EvoX's ``StdWorkflow`` with ``opt_direction="max"``
over a ``Problem`` whose ``evaluate(population [P, d])`` is the objective a user writes (EvoX
ships no gymnasium problem and no digits problem):

- Digits: the population's raw training accuracy on the full training set, one ``baddbmm`` per
  layer (:class:`~benchmarks.peers.flat_nets.FlatMLP`, 64-32-10 tanh, started from ``tasks``'
  torch initialisation, the EvoTorch sides' start).
- CartPole-v1 and Pendulum-v1: :class:`~benchmarks.peers.flat_nets.PopulationRollouts` (one
  batched policy forward per time step; the evosax side uses the same), policies of
  ``tasks.cartpole_net``/``pendulum_net``'s shapes.

EvoX runs eagerly here (no ``torch.compile``: its documentation makes compilation optional, and
its algorithms draw from torch's global generator, seeded with the run's seed). Settings
(``SETTINGS``): EvoX's defaults where it has them (SNES's ``lrate_mean`` 1, ``temperature``
12.5 weights, OpenES with mirrored sampling and Adam), the other sides' recipes for the rest
(σ 0.1 and learning rate 0.05 for OpenES as es_opt's supervised sample; SNES σ₀ 1 and 100 members
on digits as es_opt's SNES). Not run: EvoX's XNES and CMA-ES adapt a full ``d × d`` covariance
(d = 2,410 on digits), and its ``CMAES`` stops on its first step with torch 2.13 (a
``torch.cond`` branch of its eigendecomposition fails to trace); CMA-ES is compared on the
black-box benchmark instead.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any

import torch

from benchmarks.peers import tasks
from benchmarks.peers.flat_nets import FlatMLP, PopulationRollouts, digits_accuracy

ALGORITHMS = ("openes", "snes")
NETS = {
    tasks.CARTPOLE: (4, 16, 2),
    tasks.PENDULUM: (3, 16, 1),
    tasks.DIGITS: (64, 32, 10),
}
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "openes": {
        tasks.CARTPOLE: {"pop_size": 20, "noise_stdev": 0.1, "learning_rate": 0.05},
        tasks.PENDULUM: {"pop_size": 40, "noise_stdev": 0.5, "learning_rate": 0.05},
        tasks.DIGITS: {"pop_size": 100, "noise_stdev": 0.1, "learning_rate": 0.05},
    },
    "snes": {
        tasks.CARTPOLE: {"pop_size": 100, "sigma": 0.2},
        tasks.PENDULUM: {"pop_size": 40, "sigma": 0.2},
        tasks.DIGITS: {"pop_size": 100, "sigma": 1.0},
    },
}
for _algo, _by_task in SETTINGS.items():
    for _task, _cfg in _by_task.items():
        _cfg["network"] = "-".join(map(str, NETS[_task])) + " tanh (flat_nets.FlatMLP)"
        if _algo == "openes":
            _cfg.update(optimizer="adam", mirrored_sampling=True)
        if _algo == "snes":
            _cfg.update(lrate_mean=1.0, weight_type="temp (EvoX's default)")


def make_algorithm(name: str, task: str, center: torch.Tensor):
    from evox.algorithms import SNES, OpenES

    cfg = SETTINGS[name][task]
    if name == "openes":
        return OpenES(
            cfg["pop_size"],
            center,
            learning_rate=cfg["learning_rate"],
            noise_stdev=cfg["noise_stdev"],
            optimizer="adam",
            mirrored_sampling=True,
        )
    if name == "snes":
        return SNES(cfg["pop_size"], center, sigma=cfg["sigma"], lrate_mean=cfg["lrate_mean"])
    raise ValueError(f"unknown EvoX algorithm {name!r}")


def _center(algorithm) -> torch.Tensor:
    return algorithm.center.detach().clone()


def _workflow(algorithm, fitness_fn):
    from evox.core import Problem
    from evox.workflows import StdWorkflow

    class Fitness(Problem):
        def __init__(self):
            super().__init__()
            self.fn = fitness_fn

        def evaluate(self, population: torch.Tensor) -> torch.Tensor:
            return self.fn(population)

    return StdWorkflow(algorithm, Fitness(), opt_direction="max")


def run_digits(name: str, seed: int, budget_s: float) -> dict:
    tracker = tasks.DigitsTracker(budget_s)
    torch.manual_seed(seed)  # EvoX samples from torch's global generator
    data = tracker.data
    net = FlatMLP(NETS[tasks.DIGITS])
    algorithm = make_algorithm(name, tasks.DIGITS, net.init_vector(seed))
    workflow = _workflow(
        algorithm, lambda pop: digits_accuracy(net, pop, data.x_train, data.y_train)
    )

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        return net.forward(_center(workflow.algorithm).unsqueeze(0), x)[0]

    workflow.init_step()
    while not tracker.done():
        workflow.step()
        if tracker.due():
            tracker.evaluate(logits_fn)
    return tracker.result(SETTINGS[name][tasks.DIGITS], logits_fn)


def _run_rl(name: str, task: str, seed: int, budget_s: float) -> dict:
    env_id = tasks.CARTPOLE_ENV if task == tasks.CARTPOLE else tasks.PENDULUM_ENV
    tracker_cls = tasks.CartPoleTracker if task == tasks.CARTPOLE else tasks.PendulumTracker
    tracker = tracker_cls(budget_s)
    torch.manual_seed(seed)
    net = FlatMLP(NETS[task])
    algorithm = make_algorithm(name, task, net.init_vector(seed))
    rollouts = PopulationRollouts(env_id, net, algorithm.pop_size)
    generation = [0]

    def fitness(population: torch.Tensor) -> torch.Tensor:
        out = rollouts.returns(population.detach(), seed, generation[0])
        generation[0] += 1
        return out

    workflow = _workflow(algorithm, fitness)
    workflow.init_step()
    while not tracker.done():
        workflow.step()
        if tracker.due():
            tracker.evaluate(
                rollouts.act_fn(_center(workflow.algorithm)),
                train_steps=rollouts.steps,
                train_episodes=rollouts.episodes,
            )
    return tracker.result(SETTINGS[name][task])


def runners(variant: str) -> dict:
    """``RUNNERS`` of the side ``evox-<variant>``."""
    if variant not in ALGORITHMS:
        raise ValueError(f"unknown EvoX side variant {variant!r}")
    return {
        tasks.CARTPOLE: partial(_run_rl, variant, tasks.CARTPOLE),
        tasks.PENDULUM: partial(_run_rl, variant, tasks.PENDULUM),
        tasks.DIGITS: partial(run_digits, variant),
    }


def version() -> str:
    import importlib.metadata as md

    return f"evox {md.version('evox')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=ALGORITHMS)
    parser.add_argument("task", choices=tasks.TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None)
    args = parser.parse_args()
    budget = args.budget or tasks.BUDGETS[args.task].budget_s
    print(json.dumps(runners(args.variant)[args.task](args.seed, budget), indent=1))


if __name__ == "__main__":
    main()
