r"""Score an update rule on the task suite: a learning-rate grid per task, early stopping of
hopeless runs, and a reward normalised by tuned Adam.

For a task with initial evaluation loss :math:`L_0`, the rule's best loss over the learning-rate
grid :math:`L` and tuned Adam's :math:`L_{\mathrm{Adam}}` (Adam's best over the same grid, trained
in full), the task score is

.. math::
    s = \mathrm{clip}\Big(\frac{L_0 - L}{L_0 - L_{\mathrm{Adam}}}, -1, 2\Big)

(1 = as good as tuned Adam, 0 = no progress, -1 = diverged on every learning rate) and the reward
is the mean score over the suite (``aggregate="mean"``) or the worst task's score
(``aggregate="min"``). The mean lets a rule trade tasks against each other: a task on which tuned
Adam gains little turns a small absolute gain into a large score. The minimum rewards only what
helps every task, the reward to use when the question is "better everywhere".

A rule whose update cannot depend on the gradient is *trivial* and gets :data:`TRIVIAL_REWARD`
without training; the search environment gives :data:`INVALID_REWARD` to edits that make no
valid program.

Early stopping (``early_stopping=``):

* ``"halving"``: successive halving over the learning rates (Jamieson and Talwalkar 2016): all nine
  train :math:`S/9` steps, the best third continue to :math:`S/3`, the best one to :math:`S`;
* ``"curve"``: a learning-curve predictor: at the same rungs each learning rate's final loss is
  extrapolated from a power law :math:`\log L = a + b \log t` fitted to its evaluated losses;
  runs predicted to end more than a quarter of the best run's improvement behind it stop, and a
  rule whose best prediction on the first task scores below :data:`HOPELESS_SCORE` stops at once;
* ``None``: every learning rate trains in full.

With several seeds, ``funnel=`` trains a rule on the other seeds only if its reward on the first
seed reaches the threshold (the "funnel selection" of Lion's search, Chen et al. 2023, sec. 2.3:
cheap checks first, costly ones for the few that pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .canonical import depends_on_gradient
from .compiler import ProgramOptimizer
from .program import Program
from .tasks import SUITE, Task

__all__ = [
    "DIVERGED_SCORE",
    "HOPELESS_SCORE",
    "INVALID_REWARD",
    "LRS",
    "RuleResult",
    "SuiteEvaluator",
    "TaskResult",
    "TRIVIAL_REWARD",
    "tune",
]

LRS: tuple[float, ...] = tuple(10 ** (-4 + 0.5 * k) for k in range(9))
"""Learning-rate grid, 1e-4 to 1 in steps of sqrt(10)."""
INVALID_REWARD = -1.0
TRIVIAL_REWARD = 0.0
DIVERGED_SCORE = -1.0
HOPELESS_SCORE = 0.05
EARLY_STOPPING = ("halving", "curve", None)
AGGREGATES = ("mean", "min")


@dataclass
class TaskResult:
    """A rule on one task: best loss and its learning rate, initial loss, steps run, score."""

    name: str
    loss: float
    lr: float
    initial_loss: float
    steps_run: int
    score: float


@dataclass
class RuleResult:
    """A rule on the suite.

    Attributes:
        reward: the task scores' mean or minimum (the evaluator's ``aggregate``), or a penalty.
        status: ``"ok"``, ``"trivial"``, ``"hopeless"`` (stopped early), ``"funnel"`` (not
            trained past the first seed, see :class:`SuiteEvaluator`) or ``"diverged"``.
        tasks: per-task results (empty for trivial rules).
        steps_run: optimizer steps actually run, over all tasks and learning rates.
        steps_full: steps a full evaluation (no early stopping) would run.
    """

    reward: float
    status: str
    tasks: list[TaskResult] = field(default_factory=list)
    steps_run: int = 0
    steps_full: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleResult:
        tasks = [TaskResult(**t) for t in data.get("tasks", [])]
        return cls(data["reward"], data["status"], tasks, data["steps_run"], data["steps_full"])


def _predict(history: list[tuple[int, float]], final_step: int) -> float:
    """Power-law extrapolation of a loss curve to ``final_step`` (least squares in log-log)."""
    points = [(math.log(t), math.log(max(loss, 1e-12))) for t, loss in history if t > 0]
    if not all(math.isfinite(y) for _, y in points):
        return math.inf
    if len(points) < 2:
        return history[-1][1]
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var
    slope = min(slope, 0.0)  # a rising curve is predicted flat, not exploding
    return math.exp(mean_y + slope * (math.log(final_step) - mean_x))


def _score(initial: float, loss: float, baseline: float) -> float:
    if not math.isfinite(loss):
        return DIVERGED_SCORE
    gain = initial - baseline
    return max(-1.0, min(2.0, (initial - loss) / gain)) if gain > 0 else 0.0


def run_grid(
    make_optimizer: Callable[[Any, float], torch.optim.Optimizer],
    task: Task,
    lrs: Sequence[float],
    seed: int,
    early_stopping: str | None,
    baseline: float | None = None,
) -> tuple[TaskResult, bool]:
    """Train one run per learning rate with early stopping; the best run's result, and whether
    the curve predictor judged the rule hopeless on this task."""
    runs = [task.make(seed) for _ in lrs]
    initial = runs[0].loss()
    optimizers = [
        make_optimizer(run.model.parameters(), lr) for run, lr in zip(runs, lrs, strict=True)
    ]
    histories: list[list[tuple[int, float]]] = [[(0, initial)] for _ in lrs]
    alive = list(range(len(lrs)))
    rungs = [task.steps // 9, task.steps // 3, task.steps] if early_stopping else [task.steps]
    hopeless = False
    for rung, target in enumerate(rungs):
        for i in alive:
            run = runs[i]
            if early_stopping == "curve" and rung == 0:
                half = target // 2
                run.train(optimizers[i], half - run.steps_done)
                histories[i].append((run.steps_done, run.loss()))
            run.train(optimizers[i], target - run.steps_done)
            histories[i].append((target, run.loss()))
        if target == task.steps:
            break
        current = {i: histories[i][-1][1] for i in alive}
        if early_stopping == "halving":
            keep = max(1, math.ceil(len(alive) / 3))
            alive = sorted(alive, key=lambda i: current[i])[:keep]
        else:
            predicted = {i: _predict(histories[i], task.steps) for i in alive}
            best = min(predicted.values())
            if (
                baseline is not None
                and rung == 0
                and _score(initial, best, baseline) < HOPELESS_SCORE
            ):
                hopeless = True
            margin = 0.25 * max(initial - best, 0.0)
            alive = [i for i in alive if predicted[i] <= best + margin]
            if hopeless:
                alive = sorted(alive, key=lambda i: predicted[i])[:1]
                break
    steps_run = sum(run.steps_done for run in runs)
    finals = {i: histories[i][-1][1] for i in alive}
    best_i = min(finals, key=lambda i: finals[i]) if alive else 0
    score = _score(initial, finals.get(best_i, math.inf), baseline) if baseline else 0.0
    return TaskResult(
        task.name, finals.get(best_i, math.inf), lrs[best_i], initial, steps_run, score
    ), hopeless


def tune(
    make_optimizer: Callable[[Any, float], torch.optim.Optimizer],
    tasks: Sequence[Task] = SUITE,
    lrs: Sequence[float] = LRS,
    seed: int = 0,
) -> dict[str, TaskResult]:
    """A baseline tuned over the learning-rate grid, every run in full: per task, its best."""
    return {t.name: run_grid(make_optimizer, t, lrs, seed, None)[0] for t in tasks}


@dataclass(frozen=True)
class SuiteEvaluator:
    """Scores rules on a suite (picklable, so it can be sent to worker processes once).

    Args:
        baselines: tuned Adam's best loss per task name (from :func:`tune` of ``torch.optim.Adam``);
            with ``seeds``, a key ``"task@seed"`` gives that seed's own baseline (else the task's).
        tasks: the suite.
        lrs: the learning-rate grid.
        seed: seed of every network and minibatch order.
        seeds: score every task on each of these seeds instead (a task's score is its mean over
            them), so that a rule is rewarded for what holds beyond one initialisation.
        early_stopping: ``"halving"``, ``"curve"`` or ``None`` (see the module docstring).
        aggregate: ``"mean"`` or ``"min"``: how the task scores make the reward.
        funnel: with ``seeds``, a rule whose reward on the first seed alone is below ``funnel``
            is not trained on the other seeds (funnel selection, as in Lion's search): its
            reward is the first seed's and its status ``"funnel"``. With ``aggregate="min"`` it
            stops at the first task scoring below ``funnel`` (the worst task can only be lower),
            and its reward is the lowest score so far, an upper bound of the first seed's.

    Example:
        >>> from es_opt.search.tasks import make_task
        >>> tasks = (make_task("ill_conditioned", steps=27),)
        >>> adam = tune(lambda p, lr: torch.optim.Adam(p, lr=lr), tasks, lrs=(0.01, 0.1))
        >>> evaluator = SuiteEvaluator({"ill_conditioned": adam["ill_conditioned"].loss}, tasks,
        ...                            lrs=(0.01, 0.1), early_stopping=None)
        >>> from es_opt.search import load_rule
        >>> evaluator(load_rule("adamw")).reward
        1.0
    """

    baselines: dict[str, float]
    tasks: tuple[Task, ...] = SUITE
    lrs: tuple[float, ...] = LRS
    seed: int = 0
    early_stopping: str | None = "halving"
    aggregate: str = "mean"
    seeds: tuple[int, ...] | None = None
    funnel: float | None = None

    @property
    def run_seeds(self) -> tuple[int, ...]:
        return (self.seed,) if self.seeds is None else tuple(self.seeds)

    def baseline(self, task: str, seed: int) -> float:
        return self.baselines.get(f"{task}@{seed}", self.baselines.get(task, math.nan))

    def __post_init__(self) -> None:
        if self.early_stopping not in EARLY_STOPPING:
            raise ValueError(
                f"early_stopping must be one of {EARLY_STOPPING}, got {self.early_stopping!r}"
            )
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")
        if self.seeds is not None and (
            not self.seeds or not all(isinstance(x, int) and x >= 0 for x in self.seeds)
        ):
            raise ValueError(f"seeds must be a non-empty tuple of ints >= 0, got {self.seeds!r}")
        if self.funnel is not None and (
            self.seeds is None
            or len(self.seeds) < 2
            or isinstance(self.funnel, bool)
            or not isinstance(self.funnel, int | float)
            or not math.isfinite(self.funnel)
        ):
            raise ValueError(
                "funnel must be a finite number and needs at least two seeds, got "
                f"funnel={self.funnel!r} with seeds={self.seeds!r}"
            )
        missing = [
            f"{t.name}@{seed}"
            for t in self.tasks
            for seed in self.run_seeds
            if math.isnan(self.baseline(t.name, seed))
        ]
        if missing:
            raise ValueError(f"baselines has no loss for task(s) {missing}")

    def fingerprint(self) -> str:
        """What the cache key must contain besides the rule: everything that changes a reward."""
        tasks = ",".join(f"{t.name}:{t.steps}" for t in self.tasks)
        lrs = ",".join(repr(lr) for lr in self.lrs)
        key = f"{tasks}|{lrs}|{self.seed}|{self.early_stopping}|v1"
        key = key if self.aggregate == "mean" else f"{key}|{self.aggregate}"
        if self.seeds is None:
            return key
        baselines = ",".join(
            repr(self.baseline(t.name, seed)) for t in self.tasks for seed in self.seeds
        )
        key = f"{key}|seeds={list(self.seeds)}|{baselines}"
        return key if self.funnel is None else f"{key}|funnel={self.funnel!r}"

    def _reward(self, results: list[TaskResult]) -> float:
        """The reward from the tasks scored so far (a task's score: its mean over the seeds run);
        a task not run (a hopeless rule stopped after the first) counts as 0 in the mean and does
        not enter the minimum."""
        by_task: dict[str, list[float]] = {}
        for r in results:
            by_task.setdefault(r.name, []).append(r.score)
        scores = [sum(v) / len(v) for v in by_task.values()]
        return sum(scores) / len(self.tasks) if self.aggregate == "mean" else min(scores)

    def __call__(self, program: Program) -> RuleResult:
        """Score ``program``; never raises for a bad rule (diverging is a score)."""
        full = len(self.lrs) * sum(t.steps for t in self.tasks) * len(self.run_seeds)
        if not depends_on_gradient(program):
            return RuleResult(TRIVIAL_REWARD, "trivial", [], 0, full)

        def make(params: Any, lr: float) -> torch.optim.Optimizer:
            return ProgramOptimizer(params, program, lr=lr, foreach=True)

        seeds = self.run_seeds
        # without a funnel one stage, task-major; with one, the first seed's tasks come first
        stages = [seeds] if self.funnel is None else [seeds[:1], seeds[1:]]
        results: list[TaskResult] = []

        def stop(status: str) -> RuleResult:
            steps = sum(r.steps_run for r in results)
            return RuleResult(self._reward(results), status, results, steps, full)

        funnel_each_task = self.funnel is not None and self.aggregate == "min"
        for stage, stage_seeds in enumerate(stages):
            for k, task in enumerate(self.tasks):
                for seed in stage_seeds:
                    baseline = self.baseline(task.name, seed)
                    result, hopeless = run_grid(
                        make, task, self.lrs, seed, self.early_stopping, baseline
                    )
                    results.append(result)
                    if hopeless and k == 0:
                        return stop("hopeless")
                    if stage == 0 and funnel_each_task and result.score < self.funnel:
                        return stop("funnel")
            if stage == 0 and self.funnel is not None and self._reward(results) < self.funnel:
                return stop("funnel")
        diverged = all(r.score == DIVERGED_SCORE for r in results)
        return stop("diverged" if diverged else "ok")
