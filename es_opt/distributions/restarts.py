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

Every run's history is kept, and :meth:`Restarts.state_dict` (plain values and tensors) resumes
a search at any generation, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .._validation import check_choice, check_int, check_real
from ..noise import derive_seed
from .base import SearchDistribution
from .black_box import BlackBoxSearch
from .cma_parameters import default_population_size
from .stopping import StopConditions, stop_reasons

__all__ = ["Restarts", "STRATEGIES"]

STRATEGIES = ("ipop", "bipop")
RESTART_STREAM = 7

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
        self.sigma0 = check_real("sigma0", sigma0, low=0, low_open=True)
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.max_restarts = check_int("max_restarts", max_restarts, low=0)
        self.max_evaluations = (
            None if max_evaluations is None else check_int("max_evaluations", max_evaluations)
        )
        self.target = None if target is None else float(target)
        self.seed = check_int("seed", seed, low=0)
        self.conditions = conditions or StopConditions()
        dim = self._start(0).numel()
        lam = default_population_size(dim) if n_samples is None else n_samples
        self.n_samples0 = self._even(check_int("n_samples", lam, low=1))
        distribution.check(self.n_samples0, dim)
        self.maxiter0 = self.conditions.maxiter or 100 + 150 * (dim + 3) ** 2 / math.sqrt(
            self.n_samples0
        )
        self.runs: list[dict[str, Any]] = []
        self.best_value = math.inf
        self.best_x: torch.Tensor | None = None
        self.evaluations = 0
        self.done = False
        self.search: BlackBoxSearch | None = None
        self._run: dict[str, Any] = {}
        self._begin_run()

    def _even(self, n: int) -> int:
        return n + n % 2 if self.distribution.antithetic else n

    def _generator(self, run: int, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.seed, RESTART_STREAM, run, stream))

    def _start(self, run: int) -> torch.Tensor:
        if isinstance(self.x0, torch.Tensor):
            return self.x0.to(torch.float64).flatten()
        return torch.as_tensor(self.x0(self._generator(run, 0)), dtype=torch.float64).flatten()

    def _regime(self, run: int) -> tuple[str, int, float, float]:
        """``(regime, λ, σ, max generations)`` of run number ``run``."""
        if run == 0:
            return (
                "small" if self.strategy == "bipop" else "large",
                self.n_samples0,
                self.sigma0,
                (self.maxiter0),
            )
        large_runs = sum(r["regime"] == "large" for r in self.runs)
        if self.strategy == "ipop":
            return "large", self.n_samples0 * 2**run, self.sigma0, self.maxiter0
        small = sum(r["evaluations"] for r in self.runs if r["regime"] == "small")
        large = sum(r["evaluations"] for r in self.runs if r["regime"] == "large")
        if small < max(1, large):
            u, u2 = torch.rand(2, generator=self._generator(run, 1), dtype=torch.float64).tolist()
            lam = max(2, math.floor(self.n_samples0 * (2**large_runs) ** (u2 * u2)))
            maxiter = min(self.maxiter0, 0.5 * large / lam)
            return "small", lam, self.sigma0 * 0.01**u, maxiter
        return "large", self.n_samples0 * 2 ** (large_runs + 1), self.sigma0, self.maxiter0

    def _begin_run(self) -> None:
        run = len(self.runs)
        regime, lam, sigma, maxiter = self._regime(run)
        lam = self._even(lam)
        self.search = BlackBoxSearch(
            self.distribution,
            self._start(run),
            sigma,
            n_samples=lam,
            seed=derive_seed(self.seed, RESTART_STREAM, run, 2) % (1 << 62),
        )
        self._run = {
            "run": run,
            "regime": regime,
            "n_samples": lam,
            "sigma0": sigma,
            "maxiter": maxiter,
            "evaluations": 0,
            "best_value": math.inf,
            "best": [],
            "median": [],
            "stop": [],
        }

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
        record["evaluations"] += values.numel()
        finite = values[torch.isfinite(values)]
        best = float(finite.min()) if finite.numel() else math.inf
        record["best"].append(best)
        record["median"].append(float(finite.median()) if finite.numel() else math.inf)
        if best < record["best_value"]:
            record["best_value"] = best
        if best < self.best_value:
            self.best_value, self.best_x = best, x[int(torch.argmin(values))].clone()
        reasons = stop_reasons(
            StopConditions(**{**self.conditions.to_dict(), "maxiter": None}),
            state=search.state,
            sigma=search.distribution.sigma_of(search.state, search.generation, search.sigma0),
            mean=search.mean,
            best=record["best"],
            median=record["median"],
            current_range=float(finite.max() - finite.min()) if finite.numel() else math.inf,
            n_samples=search.n_samples,
        )
        reasons = [r for r in reasons if r != "maxiter"]
        if len(record["best"]) >= record["maxiter"]:
            reasons.append("maxiter")
        if self.target is not None and self.best_value <= self.target:
            reasons.append("target")
        if self.max_evaluations is not None and self.evaluations >= self.max_evaluations:
            reasons.append("budget")
        if not reasons:
            return True
        record["stop"] = reasons
        self.runs.append(record)
        large_restarts = sum(r["regime"] == "large" for r in self.runs[1:])
        if "target" in reasons or "budget" in reasons or large_restarts >= self.max_restarts:
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
