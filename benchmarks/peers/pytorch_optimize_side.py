"""The ancestor's side: pytorch-optimize 0.0.1's ``ESOptimizer`` used as its README and sample
scripts show (see ``SETTINGS``).

- CartPole-v1: ``sample_scripts/rl.py``: its 4-50-2 network (sigmoid hidden layer, softmax then
  argmax in ``forward``), ``Model(..., SamplingStrategy.BOTTOM_UP)``, ``SGD(lr=1e-2)``,
  ``sigma=0.1``, ``n_samples=10``, one episode per evaluation, the environment made inside the
  objective. ``n_workers`` is left at the library's default (4).
- Pendulum-v1: no sample exists; the RL sample's settings with a 3-50-1 network (sigmoid hidden
  layer, linear output; the environment clips the torque).
- Digits: ``sample_scripts/supervised.py``: ``SamplingStrategy.ALL``, ``Adadelta`` with its
  defaults, ``sigma=1e-2``, ``n_samples=100``, ``n_workers=10``, minibatches of 50 shuffled
  training examples, the objective ``sklearn.metrics.accuracy_score`` on the minibatch; the
  network is the shared 64-32-10 MLP (the sample's CNN is for 28×28 MNIST).

Differences from the samples, all to measure the same thing as the other sides: the gymnasium
API (the samples use gym < 0.26, which does not run on NumPy 2), CartPole-v1 instead of v0 with
a 500-step limit (the same thing), reproducible seeding (the library draws from the global
``torch``/``numpy``/``random`` generators, so those are seeded; every evaluation resets
from a seed derived from the step's seed, drawn from the run's generator, and the perturbed
weights), and a thin proxy around the optimizer's worker
pool that records the objective values to count environment steps (the values are passed
through unchanged).
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pytorch_optimize.model import Model, SamplingStrategy
from pytorch_optimize.objective import Objective, Samples
from pytorch_optimize.optimizer import ESOptimizer
from sklearn.metrics import accuracy_score
from torch import nn

from benchmarks.peers import tasks

SIDE = "pytorch-optimize"

RL_SAMPLE = {
    "strategy": "BOTTOM_UP",
    "sgd_optimizer": "SGD(lr=1e-2)",
    "lr": 1e-2,
    "sigma": 0.1,
    "n_samples": 10,
    "n_workers": 4,
    "episodes_per_evaluation": 1,
}
SETTINGS = {
    tasks.CARTPOLE: {**RL_SAMPLE, "network": "4-50-2 sigmoid, softmax+argmax (sample's Net)"},
    tasks.PENDULUM: {**RL_SAMPLE, "network": "3-50-1 sigmoid, linear output"},
    tasks.DIGITS: {
        "strategy": "ALL",
        "sgd_optimizer": "Adadelta() defaults",
        "sigma": 1e-2,
        "n_samples": 100,
        "n_workers": 10,
        "minibatch": 50,
        "objective": "sklearn accuracy_score on the minibatch",
        "network": "64-32-10 tanh (tasks.digits_net)",
    },
}


def _seed_everything(seed: int) -> None:
    # pytorch-optimize samples its noise and layers from the global generators.
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the peer reads the legacy global generator)
    torch.manual_seed(seed)


class _RecordingPool:
    """Passes ``starmap`` through to the optimizer's pool and keeps the objective values."""

    def __init__(self, pool):
        self.pool = pool
        self.values: list[list[float]] = []

    def starmap(self, fn, iterable):
        out = self.pool.starmap(fn, iterable)
        self.values.extend(out)
        return out

    def terminate(self) -> None:
        self.pool.terminate()


class SampleNet(nn.Module):
    """The RL sample's network: sigmoid hidden layer; for discrete actions softmax then argmax
    (so ``forward`` already returns the greedy action)."""

    def __init__(self, n_inputs: int, n_hidden: int, n_outputs: int, *, discrete: bool):
        super().__init__()
        self.fc1 = nn.Linear(n_inputs, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_outputs)
        self.discrete = discrete

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(torch.sigmoid(self.fc1(x)))
        if self.discrete:
            return torch.argmax(torch.softmax(x, dim=1), dim=1)
        return x


@dataclass(init=True)
class EnvSamples(Samples):
    env_name: str
    seed: int


@dataclass(init=True)
class BatchSamples(Samples):
    inputs: torch.Tensor
    targets: torch.Tensor


class EpisodicReturn(Objective):
    """The RL sample's objective: the return of one episode, the environment made per call."""

    def __call__(self, model, samples, device="cpu") -> list[float]:
        import gymnasium as gym

        env = gym.make(samples.env_name)
        # The sample resets unseeded (a fresh random start per evaluation). The objective does
        # not know which perturbation it evaluates, so the start is derived from the step's
        # seed and the perturbed weights: distinct per evaluation, yet reproducible.
        weights = b"".join(p.detach().numpy().tobytes() for p in model.net.parameters())
        seed = (samples.seed + zlib.crc32(weights)) % tasks.TRAIN_SEED_LIMIT
        state, _ = env.reset(seed=seed)
        done = False
        episodic_return = 0.0
        while not done:
            state = torch.from_numpy(state).reshape((1, -1)).float()
            out = model.forward(state)
            action = int(out) if samples.env_name == tasks.CARTPOLE_ENV else out[0].numpy()
            state, reward, terminated, truncated, _ = env.step(action)
            episodic_return += float(reward)
            done = terminated or truncated
        env.close()
        return [episodic_return]


class Accuracy(Objective):
    """The supervised sample's objective: accuracy_score of the minibatch."""

    def __call__(self, model, samples, device="cpu") -> list[float]:
        outputs = model.forward(samples.inputs)
        predicted = torch.argmax(outputs, dim=1)
        return [accuracy_score(samples.targets.tolist(), predicted.tolist())]


def _run_rl(task: str, env_id: str, tracker, net: SampleNet, seed: int, steps_of) -> dict:
    cfg = SETTINGS[task]
    _seed_everything(seed)
    rng = np.random.default_rng(seed)
    model = Model(net, strategy=SamplingStrategy.BOTTOM_UP)
    es = ESOptimizer(
        model=model,
        sgd_optimizer=torch.optim.SGD(net.parameters(), lr=cfg["lr"]),
        objective_fn=EpisodicReturn(),
        obj_weights=[1.0],
        sigma=cfg["sigma"],
        n_samples=cfg["n_samples"],
        devices=["cpu"],
        n_workers=cfg["n_workers"],
    )
    es.pool = recorder = _RecordingPool(es.pool)
    act = tasks.greedy_torch_act(net, discrete=False)  # forward already returns the action
    try:
        while not tracker.done():
            samples = EnvSamples(env_name=env_id, seed=int(rng.integers(tasks.TRAIN_SEED_LIMIT)))
            es.gradient_step(samples)
            if tracker.due():
                tracker.evaluate(
                    act,
                    train_steps=sum(steps_of(v[0]) for v in recorder.values),
                    train_episodes=len(recorder.values),
                )
    finally:
        recorder.terminate()
    return tracker.result(cfg)


def run_cartpole(seed: int, budget_s: float) -> dict:
    tracker = tasks.CartPoleTracker(budget_s)
    torch.manual_seed(seed)
    net = SampleNet(4, 50, 2, discrete=True)
    # CartPole pays 1 per step: an episode's return is its length.
    return _run_rl(tasks.CARTPOLE, tasks.CARTPOLE_ENV, tracker, net, seed, lambda r: int(r))


def run_pendulum(seed: int, budget_s: float) -> dict:
    tracker = tasks.PendulumTracker(budget_s)
    torch.manual_seed(seed)
    net = SampleNet(3, 50, 1, discrete=False)
    # Every Pendulum episode lasts its 200-step limit.
    return _run_rl(tasks.PENDULUM, tasks.PENDULUM_ENV, tracker, net, seed, lambda r: 200)


def run_digits(seed: int, budget_s: float) -> dict:
    cfg = SETTINGS[tasks.DIGITS]
    tracker = tasks.DigitsTracker(budget_s)
    _seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    data = tracker.data
    net = tasks.digits_net()
    model = Model(net, strategy=SamplingStrategy.ALL)
    es = ESOptimizer(
        model=model,
        sgd_optimizer=torch.optim.Adadelta(net.parameters()),
        objective_fn=Accuracy(),
        obj_weights=[1.0],
        sigma=cfg["sigma"],
        n_samples=cfg["n_samples"],
        devices=["cpu"],
        n_workers=cfg["n_workers"],
    )

    def logits(x: torch.Tensor) -> torch.Tensor:
        return net(x)

    n = len(data.y_train)
    try:
        while not tracker.done():
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, cfg["minibatch"]):
                idx = order[start : start + cfg["minibatch"]]
                es.gradient_step(BatchSamples(inputs=data.x_train[idx], targets=data.y_train[idx]))
                if tracker.due():
                    tracker.evaluate(logits)
                if tracker.done():
                    break
    finally:
        es.pool.terminate()
    return tracker.result(cfg, logits)


RUNNERS = {
    tasks.CARTPOLE: run_cartpole,
    tasks.DIGITS: run_digits,
    tasks.PENDULUM: run_pendulum,
}


def version() -> str:
    import importlib.metadata

    return importlib.metadata.version("pytorch-optimize")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=tasks.TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--n-workers", type=int, default=None)
    args = parser.parse_args()
    if args.n_workers:
        SETTINGS[args.task]["n_workers"] = args.n_workers
    budget = args.budget or tasks.BUDGETS[args.task].budget_s
    result: dict[str, Any] = RUNNERS[args.task](args.seed, budget)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
