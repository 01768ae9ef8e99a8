"""es_opt's side, written against the public API only:

    Model(net=...), ESOptimizer(model=, objective_fn=, sigma=, n_samples=, seed=),
    es.gradient_step(samples), Objective, Samples

For now every task uses a plain :class:`es_opt.Objective` that does its own gymnasium rollouts
or its own accuracy; each task has one function marked ``SWITCH POINT`` that builds the
objective and its samples, to be replaced by the library's ready-made objectives
(``es_opt.rl``, the supervised accuracy objective) once their API is fixed.

Reproducibility: the optimizer gets the run's seed; episode seeds come from a
``numpy.random.Generator`` seeded with it; the networks are initialised under
``torch.random.fork_rng`` with that seed, so no global generator is touched.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmarks.peers import tasks
from es_opt import ESOptimizer, Model, Objective, Samples

SIDE = "es_opt"

# Provisional settings (the inner optimizer is the library's default, RangerLite).
SETTINGS = {
    tasks.CARTPOLE: {
        "sigma": 0.1,
        "n_samples": 20,
        "episodes_per_evaluation": 1,
        "network": "4-16-2 tanh (tasks.cartpole_net)",
    },
    tasks.PENDULUM: {
        "sigma": 0.1,
        "n_samples": 40,
        "episodes_per_evaluation": 1,
        "network": "3-16-1 tanh (tasks.pendulum_net)",
    },
    tasks.DIGITS: {
        "sigma": 0.05,
        "n_samples": 100,
        "objective": "raw training accuracy, full training set",
        "network": "64-32-10 tanh (tasks.digits_net)",
    },
}


@dataclass
class EpisodeSeeds(Samples):
    """Reset seeds of the episodes every perturbation plays in one step (common random
    numbers: all perturbations of a step face the same start states)."""

    seeds: list[int] = field(default_factory=list)


@dataclass
class Batch(Samples):
    inputs: torch.Tensor
    targets: torch.Tensor


class EpisodicReturn(Objective):
    """Mean return of greedy episodes on ``samples.seeds``; counts environment steps through
    the ``collect_stats`` / ``merge_stats`` hooks so that parallel evaluators count too."""

    def __init__(self, env_id: str, *, discrete: bool):
        self.env_id = env_id
        self.discrete = discrete
        self._env = None
        self._pending = [0, 0]  # steps, episodes since the last collect_stats()
        self.total_steps = 0
        self.total_episodes = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_env"] = None  # environments do not travel to workers; each makes its own
        return state

    def _get_env(self):
        if self._env is None:
            import gymnasium as gym

            self._env = gym.make(self.env_id)
        return self._env

    def __call__(self, model: Model, samples: EpisodeSeeds) -> float:
        env = self._get_env()
        total = 0.0
        with torch.no_grad():
            for seed in samples.seeds:
                obs, _ = env.reset(seed=int(seed))
                done = False
                while not done:
                    out = model(torch.as_tensor(obs, dtype=torch.float32))
                    action = int(out.argmax()) if self.discrete else out.numpy()
                    obs, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    self._pending[0] += 1
                    done = terminated or truncated
                self._pending[1] += 1
        return total / len(samples.seeds)

    def collect_stats(self) -> tuple[int, int]:
        out = tuple(self._pending)
        self._pending = [0, 0]
        return out

    def merge_stats(self, stats: list[Any]) -> None:
        for item in stats:
            if item is not None:
                self.total_steps += item[0]
                self.total_episodes += item[1]


class TrainAccuracy(Objective):
    """Raw accuracy of the perturbed network on ``samples``."""

    def __call__(self, model: Model, samples: Batch) -> float:
        with torch.no_grad():
            pred = model(samples.inputs).argmax(dim=-1)
        return float((pred == samples.targets).float().mean())


def _init_net(factory: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


# --- SWITCH POINT (CartPole): replace with es_opt.rl's episodic-return objective ------------
def cartpole_objective(seed: int) -> tuple[EpisodicReturn, Callable[[], EpisodeSeeds]]:
    rng = np.random.default_rng(seed)
    n = SETTINGS[tasks.CARTPOLE]["episodes_per_evaluation"]
    objective = EpisodicReturn(tasks.CARTPOLE_ENV, discrete=True)
    return objective, lambda: EpisodeSeeds(rng.integers(tasks.TRAIN_SEED_LIMIT, size=n).tolist())


# --- SWITCH POINT (Pendulum): replace with es_opt.rl's episodic-return objective ------------
def pendulum_objective(seed: int) -> tuple[EpisodicReturn, Callable[[], EpisodeSeeds]]:
    rng = np.random.default_rng(seed)
    n = SETTINGS[tasks.PENDULUM]["episodes_per_evaluation"]
    objective = EpisodicReturn(tasks.PENDULUM_ENV, discrete=False)
    return objective, lambda: EpisodeSeeds(rng.integers(tasks.TRAIN_SEED_LIMIT, size=n).tolist())


# --- SWITCH POINT (digits): replace with the library's supervised accuracy objective --------
def digits_objective(data: tasks.DigitsData) -> tuple[TrainAccuracy, Callable[[], Batch]]:
    batch = Batch(data.x_train, data.y_train)
    return TrainAccuracy(), lambda: batch


def _run_rl(task: str, tracker, net_factory, make_objective, seed: int) -> dict:
    cfg = SETTINGS[task]
    net = _init_net(net_factory, seed)
    objective, next_samples = make_objective(seed)
    es = ESOptimizer(
        model=Model(net=net),
        objective_fn=objective,
        sigma=cfg["sigma"],
        n_samples=cfg["n_samples"],
        seed=seed,
    )
    act = tasks.greedy_torch_act(net, discrete=task == tasks.CARTPOLE)
    while not tracker.done():
        es.gradient_step(next_samples())
        if tracker.due():
            tracker.evaluate(
                act, train_steps=objective.total_steps, train_episodes=objective.total_episodes
            )
    return tracker.result({**cfg, "inner_optimizer": "default (RangerLite)"})


def run_cartpole(seed: int, budget_s: float) -> dict:
    tracker = tasks.CartPoleTracker(budget_s)
    return _run_rl(tasks.CARTPOLE, tracker, tasks.cartpole_net, cartpole_objective, seed)


def run_pendulum(seed: int, budget_s: float) -> dict:
    tracker = tasks.PendulumTracker(budget_s)
    return _run_rl(tasks.PENDULUM, tracker, tasks.pendulum_net, pendulum_objective, seed)


def run_digits(seed: int, budget_s: float) -> dict:
    cfg = SETTINGS[tasks.DIGITS]
    tracker = tasks.DigitsTracker(budget_s)
    net = _init_net(tasks.digits_net, seed)
    objective, next_samples = digits_objective(tracker.data)
    es = ESOptimizer(
        model=Model(net=net),
        objective_fn=objective,
        sigma=cfg["sigma"],
        n_samples=cfg["n_samples"],
        seed=seed,
    )
    while not tracker.done():
        es.gradient_step(next_samples())
        if tracker.due():
            tracker.evaluate(net)
    return tracker.result({**cfg, "inner_optimizer": "default (RangerLite)"}, net)


RUNNERS = {
    tasks.CARTPOLE: run_cartpole,
    tasks.DIGITS: run_digits,
    tasks.PENDULUM: run_pendulum,
}


def version() -> str:
    import importlib.metadata

    return importlib.metadata.version("es_opt")


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
