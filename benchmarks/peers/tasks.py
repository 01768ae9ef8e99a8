"""The three benchmark tasks, defined once for every side so the criterion is identical.

Each side's runner builds its own optimiser and model, then drives a *tracker* from this module:

    tracker = CartPoleTracker(budget_s)
    while not tracker.done():
        ...one generation of the side's algorithm...
        if tracker.due():
            tracker.evaluate(act, train_steps=..., train_episodes=...)
    return tracker.result(settings)

What the trackers fix for everyone:

- **Clock.** Started when the tracker is created, which every side does first thing in its run
  function (after imports, before building its problem, model or worker pool), so set-up time
  counts. It never stops: evaluation time is part of the wall time, because a user waiting for a
  solved CartPole waits for it too. The evaluation's own cost is reported separately
  (``eval_time_s``) so it can be subtracted by a reader.
- **Evaluation.** The *current centre* (the mean of the search distribution, or the network's
  current weights) acts greedily (argmax for discrete actions, the deterministic output clipped
  to the action bounds for continuous ones) on ``N_EVAL_EPISODES`` episodes whose reset seeds are
  :data:`EVAL_SEEDS`. Training episodes on every side use seeds below ``10**9`` (or the
  environment's own random stream), so these are unseen. The ten episodes run in lock-step, one
  batched forward pass per time step. On CartPole the evaluation stops as soon as the mean can no
  longer reach 475 (every step pays 1, so the bound is exact); that only shortens failing
  evaluations, it never changes the verdict.
- **Schedule.** An evaluation is due after a generation when ``eval_interval_s`` of wall time has
  passed since the previous one started (and after the first generation), so a side with short
  generations is not charged more evaluations per second than a side with long ones.
- **Training steps and episodes** are what the side reports through ``train_steps`` /
  ``train_episodes`` (environment interactions of training rollouts only; evaluation steps are
  counted in ``eval_steps``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

CARTPOLE = "cartpole"
DIGITS = "digits"
PENDULUM = "pendulum"
TASKS = (CARTPOLE, DIGITS, PENDULUM)

N_EVAL_EPISODES = 10
EVAL_SEEDS = tuple(range(10**9, 10**9 + N_EVAL_EPISODES))
TRAIN_SEED_LIMIT = 10**9  # training resets draw their seeds below this

CARTPOLE_ENV = "CartPole-v1"
CARTPOLE_THRESHOLD = 475.0
PENDULUM_ENV = "Pendulum-v1"
DIGITS_TARGET = 0.96
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class TaskBudget:
    """Wall-time cap of one run, full and ``--quick``, and how often the centre is evaluated."""

    budget_s: float
    quick_budget_s: float
    eval_interval_s: float


BUDGETS = {
    # A full 10-episode evaluation costs ~80 µs per environment step here: ~40 ms on a solved
    # CartPole, ~200 ms on Pendulum (2,000 steps), hence the intervals.
    # CartPole stops when solved; the cap only bounds a run that never solves it.
    CARTPOLE: TaskBudget(budget_s=60.0, quick_budget_s=30.0, eval_interval_s=0.5),
    # Test accuracy is cheap (a few ms): evaluated at most every 0.2 s.
    DIGITS: TaskBudget(budget_s=30.0, quick_budget_s=10.0, eval_interval_s=0.2),
    PENDULUM: TaskBudget(budget_s=60.0, quick_budget_s=15.0, eval_interval_s=2.0),
}

# An action function maps a batch of observations (n, obs_dim) float32 to n actions.
ActFn = Callable[[np.ndarray], np.ndarray]


class Clock:
    """Wall time since construction, against a budget in seconds."""

    def __init__(self, budget_s: float):
        self.budget_s = float(budget_s)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def expired(self) -> bool:
        return self.elapsed() >= self.budget_s


def greedy_torch_act(net: torch.nn.Module, *, discrete: bool) -> ActFn:
    """The greedy action function of a torch policy that maps observations to logits (discrete)
    or to actions (continuous). Sides whose policy differs wrap it themselves."""

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net(torch.as_tensor(obs, dtype=torch.float32))
        if discrete:
            return out.argmax(dim=-1).numpy()
        return out.numpy()

    return act


class GreedyEvaluator:
    """Runs ``N_EVAL_EPISODES`` greedy episodes on :data:`EVAL_SEEDS`, in lock-step."""

    def __init__(self, env_id: str):
        import gymnasium as gym

        self.envs = [gym.make(env_id) for _ in EVAL_SEEDS]
        space = self.envs[0].action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.low = None if self.discrete else space.low
        self.high = None if self.discrete else space.high
        self.max_steps = self.envs[0].spec.max_episode_steps

    def run(self, act: ActFn, *, stop_below: float | None = None) -> tuple[float, int, bool]:
        """Returns (mean return, environment steps, complete). With ``stop_below`` set and
        rewards of exactly 1 per step (CartPole), stops once the mean cannot reach it; the
        evaluation is then incomplete and its mean a lower bound."""
        n = len(self.envs)
        obs = np.stack([env.reset(seed=s)[0] for env, s in zip(self.envs, EVAL_SEEDS, strict=True)])
        obs = obs.astype(np.float32)
        returns = np.zeros(n)
        active = np.ones(n, dtype=bool)
        steps = 0
        t = 0
        while active.any():
            idx = np.flatnonzero(active)
            actions = np.asarray(act(obs[idx]))
            if not self.discrete:
                actions = np.clip(actions.reshape(len(idx), -1), self.low, self.high)
            t += 1
            for k, i in enumerate(idx):
                a = int(actions[k]) if self.discrete else actions[k]
                o, r, terminated, truncated, _ = self.envs[i].step(a)
                obs[i] = o
                returns[i] += r
                steps += 1
                if terminated or truncated:
                    active[i] = False
            if stop_below is not None and active.any():
                best_case = returns.sum() + active.sum() * (self.max_steps - t)
                if best_case < stop_below * n:
                    return float(returns.mean()), steps, False
        return float(returns.mean()), steps, True

    def close(self) -> None:
        for env in self.envs:
            env.close()


class _Tracker:
    def __init__(self, budget_s: float, eval_interval_s: float):
        self.clock = Clock(budget_s)
        self.eval_interval_s = eval_interval_s
        self.last_eval_start: float | None = None
        self.eval_time_s = 0.0
        self.n_evals = 0
        self.generations = 0
        self.history: list[tuple[float, float]] = []  # (elapsed, value) after each evaluation

    def due(self) -> bool:
        """Counts a finished generation and says whether the centre is evaluated now."""
        self.generations += 1
        if self.last_eval_start is None:
            return True
        return self.clock.elapsed() - self.last_eval_start >= self.eval_interval_s

    def _timed(self, fn: Callable[[], Any]) -> Any:
        start = self.clock.elapsed()
        self.last_eval_start = start
        out = fn()
        self.eval_time_s += self.clock.elapsed() - start
        self.n_evals += 1
        return out

    def _common(self) -> dict[str, Any]:
        return {
            "elapsed_s": round(self.clock.elapsed(), 3),
            "budget_s": self.clock.budget_s,
            "generations": self.generations,
            "n_evals": self.n_evals,
            "eval_time_s": round(self.eval_time_s, 3),
            "history": [(round(t, 3), round(v, 4)) for t, v in self.history],
        }


class CartPoleTracker(_Tracker):
    """CartPole-v1 until the greedy mean over the evaluation episodes reaches 475."""

    def __init__(self, budget_s: float, eval_interval_s: float | None = None):
        super().__init__(budget_s, _interval(CARTPOLE, eval_interval_s))
        self.evaluator = GreedyEvaluator(CARTPOLE_ENV)
        self.solved = False
        self.solved_at: dict[str, Any] | None = None
        self.solved_after_cap_s: float | None = None
        self.best_mean = float("-inf")
        self.eval_steps = 0
        self.train_steps = 0
        self.train_episodes = 0

    def done(self) -> bool:
        return self.solved or self.clock.expired()

    def evaluate(self, act: ActFn, *, train_steps: int, train_episodes: int) -> bool:
        self.train_steps, self.train_episodes = int(train_steps), int(train_episodes)
        mean, steps, complete = self._timed(
            lambda: self.evaluator.run(act, stop_below=CARTPOLE_THRESHOLD)
        )
        self.eval_steps += steps
        self.history.append((self.clock.elapsed(), mean))
        if complete:
            self.best_mean = max(self.best_mean, mean)
        if complete and mean >= CARTPOLE_THRESHOLD and self.clock.expired():
            # A generation started before the cap ended after it: not solved within the cap.
            self.solved_after_cap_s = round(self.clock.elapsed(), 3)
        elif complete and mean >= CARTPOLE_THRESHOLD:
            self.solved = True
            self.solved_at = {
                "time_s": round(self.clock.elapsed(), 3),
                "steps": self.train_steps,
                "episodes": self.train_episodes,
            }
        return self.solved

    def result(self, settings: dict[str, Any]) -> dict[str, Any]:
        self.evaluator.close()
        return {
            "task": CARTPOLE,
            "solved": self.solved,
            "time_s": self.solved_at["time_s"] if self.solved_at else None,
            "steps": self.solved_at["steps"] if self.solved_at else self.train_steps,
            "episodes": self.solved_at["episodes"] if self.solved_at else self.train_episodes,
            "best_eval_mean": None if self.best_mean == float("-inf") else self.best_mean,
            # Early-stopped evaluations give lower bounds of their mean; the best of all of them:
            "best_eval_lower_bound": max((v for _, v in self.history), default=None),
            "solved_after_cap_s": self.solved_after_cap_s,
            "eval_steps": self.eval_steps,
            **self._common(),
            "settings": settings,
        }


class PendulumTracker(_Tracker):
    """Pendulum-v1: the best greedy mean return seen within the budget."""

    def __init__(self, budget_s: float, eval_interval_s: float | None = None):
        super().__init__(budget_s, _interval(PENDULUM, eval_interval_s))
        self.evaluator = GreedyEvaluator(PENDULUM_ENV)
        self.best_mean = float("-inf")
        self.best_at_s: float | None = None
        self.last_mean: float | None = None
        self.eval_steps = 0
        self.train_steps = 0
        self.train_episodes = 0

    def done(self) -> bool:
        return self.clock.expired()

    def evaluate(self, act: ActFn, *, train_steps: int, train_episodes: int) -> float:
        self.train_steps, self.train_episodes = int(train_steps), int(train_episodes)
        mean, steps, _ = self._timed(lambda: self.evaluator.run(act))
        self.eval_steps += steps
        self.last_mean = mean
        self.history.append((self.clock.elapsed(), mean))
        if mean > self.best_mean:
            self.best_mean, self.best_at_s = mean, self.clock.elapsed()
        return mean

    def result(self, settings: dict[str, Any]) -> dict[str, Any]:
        self.evaluator.close()
        return {
            "task": PENDULUM,
            "best_return": None if self.best_mean == float("-inf") else self.best_mean,
            "best_at_s": None if self.best_at_s is None else round(self.best_at_s, 3),
            "final_return": self.last_mean,
            "steps": self.train_steps,
            "episodes": self.train_episodes,
            "eval_steps": self.eval_steps,
            **self._common(),
            "settings": settings,
        }


@dataclass(frozen=True)
class DigitsData:
    """scikit-learn's digits, stratified 80/20 split (seed :data:`DIGITS_SPLIT_SEED`),
    standardised with the training set's mean and deviation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_data() -> DigitsData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    scaler = StandardScaler().fit(x_tr)

    def as_x(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(scaler.transform(a), dtype=torch.float32)

    return DigitsData(as_x(x_tr), torch.as_tensor(y_tr), as_x(x_te), torch.as_tensor(y_te))


class DigitsTracker(_Tracker):
    """Digits, raw accuracy: test accuracy of the centre at the end of the budget (a
    generation started before the deadline is finished, then the centre is evaluated), and the
    first time the test accuracy reached 96 %."""

    def __init__(self, budget_s: float, eval_interval_s: float | None = None):
        # The data first, then the clock: loading digits imports scikit-learn and SciPy (0.7 s in
        # a fresh process, 0.15 s where a side's library already imported SciPy), no side's work.
        self.data = load_digits_data()
        super().__init__(budget_s, _interval(DIGITS, eval_interval_s))
        self.time_to_target: float | None = None
        self.best_acc = 0.0
        self.last_acc: float | None = None

    def done(self) -> bool:
        return self.clock.expired()

    def evaluate(self, logits_fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """``logits_fn`` maps the test inputs (n, 64) to class scores (n, 10)."""

        def run() -> float:
            with torch.no_grad():
                pred = logits_fn(self.data.x_test).argmax(dim=-1)
            return float((pred == self.data.y_test).float().mean())

        acc = self._timed(run)
        self.last_acc = acc
        self.best_acc = max(self.best_acc, acc)
        self.history.append((self.clock.elapsed(), acc))
        if self.time_to_target is None and acc >= DIGITS_TARGET:
            self.time_to_target = self.clock.elapsed()
        return acc

    def result(self, settings: dict[str, Any], logits_fn: Callable | None = None) -> dict[str, Any]:
        """Evaluates the final centre (pass its ``logits_fn``) and returns the metrics."""
        if logits_fn is not None:
            self.evaluate(logits_fn)
        return {
            "task": DIGITS,
            "final_test_acc": self.last_acc,
            "best_test_acc": self.best_acc,
            "time_to_96_s": None if self.time_to_target is None else round(self.time_to_target, 3),
            **self._common(),
            "settings": settings,
        }


def _interval(task: str, given: float | None) -> float:
    return BUDGETS[task].eval_interval_s if given is None else float(given)


# Networks shared by the sides that do not bring their own (see each side's settings).
def cartpole_net() -> torch.nn.Module:
    """4-16-2 with tanh: the policy of EvoTorch's CartPole example."""
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def pendulum_net() -> torch.nn.Module:
    """3-16-1 with tanh; the environment clips the torque to [-2, 2]."""
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def digits_net() -> torch.nn.Module:
    """64-32-10 with tanh (2,410 parameters)."""
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
