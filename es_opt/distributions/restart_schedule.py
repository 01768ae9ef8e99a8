"""The IPOP / BIPOP restart schedule: from the runs finished so far, the next run's regime,
population size ``λ``, initial step size ``σ`` and generation cap, and when the restarts are spent.

A pure function of its configuration and of each finished run's ``regime`` and ``evaluations``:
the same records give the same next run, in any process, before or after a checkpoint.

- IPOP (Auger & Hansen 2005, "A Restart CMA Evolution Strategy With Increasing Population
  Size"): run ``k`` has ``λ_k = λ₀ 2^k`` and ``σ₀``.
- BIPOP (Hansen 2009, "Benchmarking a BI-population CMA-ES on the BBOB-2009 function testbed",
  as pycma's ``fmin(..., bipop=True)``): the first run ``λ₀, σ₀`` counts as *small*. While the
  small regime has used fewer evaluations than the large one (``E_small < max(1, E_large)``),
  the next run is small::

      U, U' ~ Uniform[0, 1)   (drawn from a generator seeded by (seed, run))
      σ = σ₀ · 10^{−2U}
      λ = max(2, ⌊λ₀ (2^k)^{U'²}⌋)            k = large runs so far
      generations ≤ min(maxiter₀, ½ E_large / λ)

  otherwise a large run with ``λ = λ₀ 2^{k+1}`` and ``σ₀``.

``maxiter₀`` is ``100 + 150 (d + 3)² / √λ₀`` (pycma's default) unless given. The restarts are
spent once ``max_restarts`` large runs followed the first (IPOP: every restart is large).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .._validation import check_choice, check_int, check_real
from ..noise import derive_seed
from .stopping import StopConditions, stop_reasons

__all__ = [
    "RESTART_STREAM",
    "STRATEGIES",
    "RestartSchedule",
    "observe_generation",
    "restart_generator",
]

STRATEGIES = ("ipop", "bipop")
RESTART_STREAM = 7
"""The stream of :func:`~es_opt.noise.derive_seed` that every restart draw comes from."""


def restart_generator(seed: int, run: int, stream: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, run, stream)``: stream 0 draws run ``run``'s start
    point, stream 1 BIPOP's ``U, U'``."""
    return torch.Generator().manual_seed(derive_seed(seed, RESTART_STREAM, run, stream))


class RestartSchedule:
    """The next run of an IPOP or BIPOP restart sequence (see the module docstring).

    Args:
        strategy: ``"ipop"`` or ``"bipop"``.
        n_samples0: ``λ₀``, the first run's population size.
        sigma0: ``σ₀``, the first run's step size (> 0).
        dim: the search space's dimension ``d`` (for the default generation cap).
        seed: seeds BIPOP's draws (and, through :meth:`generator`, the start points).
        max_restarts: restarts after the first run (BIPOP: large runs only, as pycma counts).
        maxiter: the generation cap ``maxiter₀`` of a run; ``None``: pycma's default.
        antithetic: round every ``λ`` up to an even number (mirrored pairs).

    Example:
        >>> schedule = RestartSchedule("bipop", 8, 2.0, dim=4, seed=0)
        >>> schedule.next_run([])[:3]
        ('small', 8, 2.0)
        >>> schedule.next_run([{"regime": "small", "evaluations": 800}])[:3]
        ('large', 16, 2.0)
    """

    def __init__(
        self,
        strategy: str,
        n_samples0: int,
        sigma0: float,
        *,
        dim: int,
        seed: int = 0,
        max_restarts: int = 9,
        maxiter: float | None = None,
        antithetic: bool = False,
    ):
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.n_samples0 = check_int("n_samples0", n_samples0, low=1)
        self.sigma0 = check_real("sigma0", sigma0, low=0, low_open=True)
        self.dim = check_int("dim", dim, low=1)
        self.seed = check_int("seed", seed, low=0)
        self.max_restarts = check_int("max_restarts", max_restarts, low=0)
        self.antithetic = bool(antithetic)
        if maxiter is None:
            maxiter = 100 + 150 * (self.dim + 3) ** 2 / math.sqrt(self.n_samples0)
        self.maxiter0 = check_real("maxiter", maxiter, low=0, low_open=True)

    def generator(self, run: int, stream: int) -> torch.Generator:
        """:func:`restart_generator` of this schedule's seed."""
        return restart_generator(self.seed, run, stream)

    def even(self, n_samples: int) -> int:
        """``n_samples`` rounded up to even for mirrored pairs."""
        return n_samples + n_samples % 2 if self.antithetic else n_samples

    def next_run(self, runs: Sequence[Mapping[str, Any]]) -> tuple[str, int, float, float]:
        """``(regime, λ, σ, max generations)`` of the run after the finished ``runs`` (each
        with its ``"regime"`` and ``"evaluations"``); ``λ`` rounded up to even for mirrored
        pairs."""
        regime, lam, sigma, maxiter = self._regime(len(runs), runs)
        return regime, self.even(lam), sigma, maxiter

    def _regime(self, run: int, runs: Sequence[Mapping[str, Any]]) -> tuple[str, int, float, float]:
        if run == 0:
            regime = "small" if self.strategy == "bipop" else "large"
            return regime, self.n_samples0, self.sigma0, self.maxiter0
        if self.strategy == "ipop":
            return "large", self.n_samples0 * 2**run, self.sigma0, self.maxiter0
        large_runs = sum(r["regime"] == "large" for r in runs)
        small = sum(r["evaluations"] for r in runs if r["regime"] == "small")
        large = sum(r["evaluations"] for r in runs if r["regime"] == "large")
        if small < max(1, large):
            u, u2 = torch.rand(2, generator=self.generator(run, 1), dtype=torch.float64).tolist()
            lam = max(2, math.floor(self.n_samples0 * (2**large_runs) ** (u2 * u2)))
            maxiter = min(self.maxiter0, 0.5 * large / lam)
            return "small", lam, self.sigma0 * 0.01**u, maxiter
        return "large", self.n_samples0 * 2 ** (large_runs + 1), self.sigma0, self.maxiter0

    def next_record(self, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The record of the run after ``runs``, before its first generation: its number,
        :meth:`next_run`'s ``regime``, ``n_samples``, ``sigma0``, ``maxiter``, and what
        :func:`observe_generation` fills in (``evaluations``, ``best_value``, per-generation
        ``best`` and ``median``, the ``stop`` reasons)."""
        regime, lam, sigma, maxiter = self.next_run(runs)
        return {
            "run": len(runs),
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

    def spent(self, runs: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the restarts are spent after the finished ``runs``: ``max_restarts`` large
        runs after the first."""
        return sum(r["regime"] == "large" for r in runs[1:]) >= self.max_restarts


def observe_generation(
    record: dict[str, Any],
    values: torch.Tensor,
    conditions: StopConditions,
    *,
    state: Mapping[str, Any],
    sigma: float | torch.Tensor,
    mean: torch.Tensor,
    n_samples: int,
) -> list[str]:
    """Adds a generation's ``values`` (one per member, lower is better; NaN/inf count as no
    value) to the run's ``record`` (its ``evaluations``, ``best``/``median`` lists and
    ``best_value``) and returns why the run stops (empty: it goes on): the criteria of
    :func:`~es_opt.distributions.stopping.stop_reasons` on the state after the generation, and
    ``"maxiter"`` once the run has had ``record["maxiter"]`` generations."""
    record["evaluations"] += values.numel()
    finite = values[torch.isfinite(values)]
    best = float(finite.min()) if finite.numel() else math.inf
    record["best"].append(best)
    record["median"].append(float(finite.median()) if finite.numel() else math.inf)
    if best < record["best_value"]:
        record["best_value"] = best
    reasons = stop_reasons(
        StopConditions(**{**conditions.to_dict(), "maxiter": None}),
        state=state,
        sigma=sigma,
        mean=mean,
        best=record["best"],
        median=record["median"],
        current_range=float(finite.max() - finite.min()) if finite.numel() else math.inf,
        n_samples=n_samples,
    )
    reasons = [r for r in reasons if r != "maxiter"]
    if len(record["best"]) >= record["maxiter"]:
        reasons.append("maxiter")
    return reasons
