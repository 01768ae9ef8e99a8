"""EvoTorch's side: PGPE with ClipUp on the RL tasks, SNES with a vectorised objective on digits.

Settings follow EvoTorch's own material (see ``SETTINGS``):

- CartPole-v1: the CartPole example of EvoTorch's documentation ("Solving reinforcement learning
  tasks using functional evolutionary algorithms"): observation normalisation, the policy
  ``Linear(obs_length, 16) >> Tanh() >> Linear(16, act_length)``; PGPE with popsize 100, ClipUp
  ``max_speed`` 0.15, ``center_learning_rate`` 0.75 × max_speed, ``radius_init`` 15 ×
  max_speed, ``stdev_learning_rate`` 0.1, ``stdev_max_change`` 0.2, centred ranking, symmetric
  sampling. We use the object-oriented ``PGPE`` class (the same algorithm as the functional
  ``pgpe`` of that page) and, instead of the example's ``GymNE``, ``VecGymNE``, EvoTorch's
  vectorised problem (the population's policies run batched over a vector of environments):
  on seed 0 it solved CartPole in 16 s against 26 s for ``GymNE``.
- Pendulum-v1: no EvoTorch example exists; the same ClipUp recipe and problem class, popsize
  40 (in 30-s trials, popsize 40 with max_speed 0.15 beat popsize 100, and max_speed 0.3).
- Digits: SNES as in EvoTorch's MNIST30K example (``stdev_init`` 1, default learning rates) on a
  ``Problem(vectorized=True)`` whose objective evaluates the whole population at once with
  ``torch.func.vmap`` over ``functional_call``, maximising raw training accuracy (full training
  set). Popsize 60: in 30-s trials SNES's default (27) and 200 stayed below 96 %, 60 reached it.

Ray actors are not used (``num_actors=None``): on a 2-core machine Ray's start-up (6-12 s) and
messaging cost more than they save; in-process evaluation is EvoTorch's fastest mode here.
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

import numpy as np
import torch

from benchmarks.peers import tasks

SIDE = "evotorch"

PGPE_CARTPOLE = {
    "algorithm": "PGPE",
    "optimizer": "clipup",
    "popsize": 100,
    "max_speed": 0.15,
    "center_learning_rate": 0.75 * 0.15,
    "radius_init": 15 * 0.15,
    "stdev_learning_rate": 0.1,
    "stdev_max_change": 0.2,
    "ranking_method": "centered",
    "symmetric": True,
    "network": "Linear(obs_length, 16) >> Tanh() >> Linear(16, act_length)",
    "observation_normalization": True,
    "problem": "VecGymNE",
}
PGPE_PENDULUM = {**PGPE_CARTPOLE, "popsize": 40}
SNES_DIGITS = {
    "algorithm": "SNES",
    "stdev_init": 1.0,
    "popsize": 60,
    "center_learning_rate": "default",
    "stdev_learning_rate": "default",
    "objective": "raw training accuracy, full training set, vmap over the population",
    "network": "64-32-10 tanh (tasks.digits_net)",
}
SETTINGS = {
    tasks.CARTPOLE: PGPE_CARTPOLE,
    tasks.PENDULUM: PGPE_PENDULUM,
    tasks.DIGITS: SNES_DIGITS,
}


def _seed_everything(seed: int) -> None:
    # EvoTorch draws from the global generators (and seeds Ray actors from them).
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the peer reads the legacy global generator)
    torch.manual_seed(seed)


def _seeded_env_maker(env_id: str, seed: int):
    """GymNE resets its environment without a seed; seeding it once at creation makes the
    whole stream of training episodes reproducible (and keeps it away from the eval seeds)."""
    import gymnasium as gym

    def make(**kwargs: Any):
        env = gym.make(env_id, **kwargs)
        env.reset(seed=seed % tasks.TRAIN_SEED_LIMIT)
        return env

    return make


def _make_pgpe(problem, cfg: dict[str, Any]):
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
    )


def _policy_act(problem, searcher, *, discrete: bool) -> tasks.ActFn:
    # to_policy() wraps the net with the problem's observation normalisation and, for Box
    # action spaces, its action clipping: exactly what EvoTorch itself deploys.
    policy = problem.to_policy(searcher.status["center"]).eval()
    return tasks.greedy_torch_act(policy, discrete=discrete)


def _run_gym(
    task: str, env_id: str, tracker, cfg: dict[str, Any], seed: int, make_searcher=None
) -> dict:
    """One RL run; ``make_searcher(problem, cfg)`` builds the algorithm (PGPE by default)."""
    from evotorch.neuroevolution import GymNE, VecGymNE

    _seed_everything(seed)
    if cfg["problem"] == "VecGymNE":
        # Seeds its vector environment from Python's global generator (seeded above).
        problem = VecGymNE(
            env=env_id,
            network=cfg["network"],
            observation_normalization=cfg["observation_normalization"],
            num_actors=None,
        )
    else:
        problem = GymNE(
            env=_seeded_env_maker(env_id, seed),
            network=cfg["network"],
            observation_normalization=cfg["observation_normalization"],
            num_actors=None,
        )
    problem.manual_seed(seed)
    searcher = (make_searcher or _make_pgpe)(problem, cfg)
    discrete = task == tasks.CARTPOLE
    while not tracker.done():
        searcher.step()
        if tracker.due():
            tracker.evaluate(
                _policy_act(problem, searcher, discrete=discrete),
                train_steps=problem.interaction_count,
                train_episodes=problem.episode_count,
            )
    return tracker.result({**cfg, "num_actors": None})


def run_cartpole(seed: int, budget_s: float) -> dict:
    tracker = tasks.CartPoleTracker(budget_s)
    return _run_gym(tasks.CARTPOLE, tasks.CARTPOLE_ENV, tracker, PGPE_CARTPOLE, seed)


def run_pendulum(seed: int, budget_s: float) -> dict:
    tracker = tasks.PendulumTracker(budget_s)
    return _run_gym(tasks.PENDULUM, tasks.PENDULUM_ENV, tracker, PGPE_PENDULUM, seed)


def _make_snes_digits(problem, cfg: dict[str, Any], init: torch.Tensor):
    from evotorch.algorithms import SNES

    return SNES(problem, stdev_init=cfg["stdev_init"], popsize=cfg["popsize"], center_init=init)


def run_digits(seed: int, budget_s: float) -> dict:
    return _run_digits(seed, budget_s, SNES_DIGITS, _make_snes_digits)


def _run_digits(seed: int, budget_s: float, cfg: dict[str, Any], make_searcher) -> dict:
    """One digits run; ``make_searcher(problem, cfg, center_init)`` builds the algorithm."""
    from evotorch import Problem
    from torch.func import functional_call, vmap

    tracker = tasks.DigitsTracker(budget_s)
    _seed_everything(seed)
    data = tracker.data
    net = tasks.digits_net()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]

    def unflatten(flat: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(flat, sizes, dim=-1)
        return {
            n: part.reshape(*flat.shape[:-1], *shape)
            for n, part, shape in zip(names, parts, shapes, strict=True)
        }

    def logits_one(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(net, params, (x,))

    batched_logits = vmap(logits_one, in_dims=(0, None))

    def accuracy(population: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = batched_logits(unflatten(population), data.x_train)
            return (logits.argmax(dim=-1) == data.y_train).float().mean(dim=-1)

    init = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    problem = Problem(
        "max",
        accuracy,
        solution_length=init.numel(),
        initial_bounds=(-1.0, 1.0),
        vectorized=True,
        seed=seed,
    )
    searcher = make_searcher(problem, cfg, init)

    def center_logits(x: torch.Tensor) -> torch.Tensor:
        center = searcher.status["center"].as_subclass(torch.Tensor)
        return logits_one(unflatten(center), x)

    while not tracker.done():
        searcher.step()
        if tracker.due():
            tracker.evaluate(center_logits)
    return tracker.result({**cfg, "center_init": "torch default init"}, center_logits)


RUNNERS = {
    tasks.CARTPOLE: run_cartpole,
    tasks.DIGITS: run_digits,
    tasks.PENDULUM: run_pendulum,
}


def version() -> str:
    import evotorch

    return evotorch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=tasks.TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--problem", choices=["GymNE", "VecGymNE"], default=None)
    args = parser.parse_args()
    budget = args.budget or tasks.BUDGETS[args.task].budget_s
    if args.problem:
        SETTINGS[args.task]["problem"] = args.problem
    print(json.dumps(RUNNERS[args.task](args.seed, budget), indent=1))


if __name__ == "__main__":
    main()
