"""Restarts of any search distribution with a growing population: IPOP (Auger & Hansen 2005, the
population doubled at each restart) and BIPOP (Hansen 2009, "Benchmarking a BI-population CMA-ES
on the BBOB-2009 function testbed": large-population runs interleaved with small-population,
small-σ runs, each regime given about the same evaluations).

A run ends when one of the :mod:`~es_opt.distributions.stopping` criteria holds, the target is
reached or the budget is spent; the next run starts from a new ``x0`` (a function of a seeded
generator, e.g. uniform in the domain) with:

- IPOP: ``λ_k = λ₀ 2^k``, ``σ₀``;
- BIPOP (as pycma's ``fmin(..., bipop=True)``): the first run ``λ₀, σ₀`` counts as *small*;
  while the small regime has used fewer evaluations than the large one, a small run with
  ``σ = σ₀ 10^{−2U}`` and ``λ = ⌊λ₀ (2^{k})^{U'²}⌋`` (``U, U'`` uniform, ``k`` large runs so
  far) and at most ``½ · evals_large / λ`` generations; else a large run ``λ = λ₀ 2^{k+1}``.

The schedule itself is :class:`~es_opt.distributions.restart_schedule.RestartSchedule`, shared
with the restarts of an :class:`~es_opt.ESOptimizer` run
(:class:`es_opt.training.restarts.RestartOnStop`).

Every run's history is kept, and :meth:`Restarts.state_dict` (plain values and tensors) resumes
a search at any generation, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .._validation import check_int
from ..noise import derive_seed
from .base import SearchDistribution
from .black_box import BlackBoxSearch
from .cma_parameters import default_population_size
from .restart_schedule import (
    RESTART_STREAM,
    STRATEGIES,
    RestartSchedule,
    observe_generation,
    restart_generator,
)
from .stopping import StopConditions

__all__ = ["Restarts", "STRATEGIES"]

StartPoint = Callable[[torch.Generator], torch.Tensor]


class Restarts:
    """IPOP or BIPOP restarts of a :class:`BlackBoxSearch` (minimisation).

    Args:
        distribution: the search distribution of every run (its ``n_samples`` changes).
        x0: the start of every run: a tensor, or ``x0(generator) -> tensor`` drawn afresh for
            each run from a generator seeded by ``(seed, run)``.
        sigma0: σ₀ of the default runs.
        strategy: ``"ipop"`` or ``"bipop"``.
        n_samples: λ₀ (default ``4 + ⌊3 ln d⌋``, rounded up to even for mirrored sampling).
        max_restarts: restarts after the first run (BIPOP: large runs only, as pycma counts).
        max_evaluations: the total budget over all runs.
        target: stop everything once a value ≤ ``target`` is seen.
        seed: seeds the noise of every run and the restarts' random draws.
        conditions: the termination criteria of a run.

    Example:
        >>> from es_opt.distributions.cma import CMAES
        >>> rastrigin = lambda x: 10 * x.shape[1] + (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(1)
        >>> search = Restarts(CMAES(), lambda g: 8 * torch.rand(2, generator=g, dtype=torch.float64)
        ...                   - 4, 2.0, strategy="ipop", max_evaluations=20_000, target=1e-8)
        >>> result = search.run(rastrigin)
        >>> result["best_value"] <= 1e-8, len(result["runs"]) >= 1
        (True, True)
    """

    def __init__(
        self,
        distribution: SearchDistribution,
        x0: torch.Tensor | StartPoint,
        sigma0: float,
        *,
        strategy: str = "bipop",
        n_samples: int | None = None,
        max_restarts: int = 9,
        max_evaluations: int | None = None,
        target: float | None = None,
        seed: int = 0,
        conditions: StopConditions | None = None,
    ):
        self.distribution = distribution
        self.x0 = x0
        self.max_evaluations = (
            None if max_evaluations is None else check_int("max_evaluations", max_evaluations)
        )
        self.target = None if target is None else float(target)
        self.conditions = conditions or StopConditions()
        self.seed = check_int("seed", seed, low=0)
        dim = self._start(0).numel()
        lam = default_population_size(dim) if n_samples is None else n_samples
        lam = check_int("n_samples", lam, low=1)
        self.schedule = RestartSchedule(
            strategy,
            lam + lam % 2 if distribution.antithetic else lam,
            sigma0,
            dim=dim,
            seed=self.seed,
            max_restarts=max_restarts,
            maxiter=self.conditions.maxiter or None,
            antithetic=distribution.antithetic,
        )
        self.sigma0, self.strategy = self.schedule.sigma0, self.schedule.strategy
        self.max_restarts, self.n_samples0 = self.schedule.max_restarts, self.schedule.n_samples0
        self.maxiter0 = self.schedule.maxiter0
        distribution.check(self.n_samples0, dim)
        self.runs: list[dict[str, Any]] = []
        self.best_value = math.inf
        self.best_x: torch.Tensor | None = None
        self.evaluations = 0
        self.done = False
        self.search: BlackBoxSearch | None = None
        self._run: dict[str, Any] = {}
        self._begin_run()

    def _start(self, run: int) -> torch.Tensor:
        if isinstance(self.x0, torch.Tensor):
            return self.x0.to(torch.float64).flatten()
        x = self.x0(restart_generator(self.seed, run, 0))
        return torch.as_tensor(x, dtype=torch.float64).flatten()

    def _begin_run(self) -> None:
        record = self.schedule.next_record(self.runs)
        run = record["run"]
        self.search = BlackBoxSearch(
            self.distribution,
            self._start(run),
            record["sigma0"],
            n_samples=record["n_samples"],
            seed=derive_seed(self.seed, RESTART_STREAM, run, 2) % (1 << 62),
        )
        self._run = record

    def step(self, f: Callable[[torch.Tensor], torch.Tensor]) -> bool:
        """One generation (and a restart when the run stops). Returns ``False`` once the whole
        search is done (target, budget or restarts spent)."""
        if self.done:
            return False
        search, record = self.search, self._run
        x = search.ask()
        values = torch.as_tensor(f(x), dtype=torch.float64).flatten()
        search.tell(values)
        self.evaluations += values.numel()
        reasons = observe_generation(
            record,
            values,
            self.conditions,
            state=search.state,
            sigma=search.distribution.sigma_of(search.state, search.generation, search.sigma0),
            mean=search.mean,
            n_samples=search.n_samples,
        )
        best = record["best"][-1]
        if best < self.best_value:
            self.best_value, self.best_x = best, x[int(torch.argmin(values))].clone()
        if self.target is not None and self.best_value <= self.target:
            reasons.append("target")
        if self.max_evaluations is not None and self.evaluations >= self.max_evaluations:
            reasons.append("budget")
        if not reasons:
            return True
        record["stop"] = reasons
        self.runs.append(record)
        if "target" in reasons or "budget" in reasons or self.schedule.spent(self.runs):
            self.done = True
            return False
        self._begin_run()
        return True

    def run(self, f: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
        """Steps until done; returns :meth:`result`. ``f`` maps ``[λ, d]`` members to ``[λ]``
        values (lower is better)."""
        while self.step(f):
            pass
        return self.result()

    def result(self) -> dict[str, Any]:
        """The best value and point, the evaluations, and every finished run's record
        (regime, λ, σ₀, evaluations, best value, stop reasons; per-generation best/median)."""
        return {
            "best_value": self.best_value,
            "best_x": self.best_x,
            "evaluations": self.evaluations,
            "runs": [dict(r) for r in self.runs],
        }

    def state_dict(self) -> dict[str, Any]:
        """The whole search (finished runs, the current one, the live search) as plain values
        and tensors: ``torch.save`` it, ``torch.load(weights_only=True)`` and
        :meth:`load_state_dict` continue it bit for bit."""
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "n_samples0": self.n_samples0,
            "runs": [dict(r) for r in self.runs],
            "current": dict(self._run),
            "search": self.search.state_dict(),
            "best_value": self.best_value,
            "best_x": self.best_x,
            "evaluations": self.evaluations,
            "done": self.done,
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Continues what :meth:`state_dict` saved (same distribution, strategy and seed)."""
        for key in ("strategy", "seed", "n_samples0"):
            if saved[key] != getattr(self, key):
                raise ValueError(
                    f"the saved restarts used {key}={saved[key]!r}, this one {getattr(self, key)!r}"
                )
        current = dict(saved["current"])
        search = BlackBoxSearch(
            self.distribution,
            saved["search"]["mean"],
            saved["search"]["sigma0"],
            n_samples=saved["search"]["n_samples"],
            seed=saved["search"]["seed"],
        )
        search.load_state_dict(saved["search"])
        self.search, self._run = search, current
        self.runs = [dict(r) for r in saved["runs"]]
        self.best_value, self.best_x = float(saved["best_value"]), saved["best_x"]
        self.evaluations, self.done = int(saved["evaluations"]), bool(saved["done"])
