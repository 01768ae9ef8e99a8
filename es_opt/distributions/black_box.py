"""Any search distribution on a plain vector: ask/tell for a black-box function ``f: Rᵈ → R`` to
minimise (benchmarks such as BBOB, restarts), with the same members and updates as an
:class:`~es_opt.ESOptimizer` run with ``torch.optim.SGD(lr=1.0)`` — only without a model, and with
the generation's noise drawn in one call (``randn(λ, d)`` seeded by ``(seed, generation)``)
instead of one seeded draw per member.

Members are built by :class:`~es_opt.population.Population`; the state is float64 tensors and
plain values, so
:meth:`BlackBoxSearch.state_dict` saves with ``torch.save`` and loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from .._validation import check_int
from ..fitness import check_fitness_matrix, check_nonfinite_policy, rank_nonfinite_last
from ..noise import derive_seed
from ..population import Population
from ..shaping import centered_ranks
from .base import SearchDistribution

__all__ = ["BlackBoxSearch"]

NOISE_STREAM = 11


class _DrawnOnce(Population):
    """A population whose standard normal noise is drawn in one call per generation,
    ``z = randn(n_draws, d)`` from a generator seeded by ``(seed, generation)``, and kept for
    ask and tell (a pure function of the seeds, like es_opt's per-pair noise, and as cheap as
    one draw can be: the sampling cost of a black-box run is the algorithm's own)."""

    def perturbations(self, pairs):
        rows = self.__dict__.get("_rows")
        if rows is None:
            generator = torch.Generator().manual_seed(
                derive_seed(self.seed, NOISE_STREAM, self.generation)
            )
            rows = torch.randn(self.n_draws, self.dim, generator=generator, dtype=torch.float64)
            object.__setattr__(self, "_rows", rows)
        return rows[list(pairs)]


class BlackBoxSearch:
    """Ask/tell minimisation of a function of a flat vector with a search distribution.

    Args:
        distribution: a :class:`~es_opt.distributions.SearchDistribution` instance.
        x0: the initial centre (flat; kept as float64).
        sigma: the initial step size σ₀ (> 0).
        n_samples: members per generation ``λ``.
        seed: the noise seed (member ``i`` of generation ``g`` depends only on
            ``(seed, g, i)``, the centre and the state).
        nonfinite: ``"raise"`` or ``"worst"`` (NaN/inf values rank below every finite one; a
            generation where all are non-finite changes nothing and warns).

    Example:
        >>> from es_opt.distributions.cma import CMAES
        >>> search = BlackBoxSearch(CMAES(), torch.ones(3), 0.5, n_samples=8, seed=0)
        >>> for _ in range(60):
        ...     x = search.ask()
        ...     _ = search.tell((x ** 2).sum(dim=1))
        >>> float(search.mean.norm()) < 1e-3
        True
    """

    def __init__(
        self,
        distribution: SearchDistribution,
        x0: torch.Tensor,
        sigma: float,
        *,
        n_samples: int,
        seed: int = 0,
        nonfinite: str = "raise",
    ):
        if not isinstance(distribution, SearchDistribution):
            raise TypeError(f"distribution must be a SearchDistribution, got {distribution!r}")
        mean = torch.as_tensor(x0, dtype=torch.float64).detach().flatten().clone()
        self.n_samples = check_int("n_samples", n_samples, low=1)
        distribution.check(self.n_samples, mean.numel())
        self.distribution = distribution
        self.seed = check_int("seed", seed, low=0)
        self.nonfinite = check_nonfinite_policy(nonfinite)
        self.sigma0 = float(sigma)
        self.state: dict[str, Any] = distribution.init_state(
            sigma, mean.numel(), dtype=torch.float64
        )
        self.mean = mean
        self.generation = 0
        self.evaluations = 0
        self.skipped = 0
        self._population: Population | None = None

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def population(self) -> Population:
        """The current generation's members (a :class:`Population` whose noise is drawn in one
        call per generation and kept until :meth:`tell`)."""
        if self._population is not None and self._population.generation == self.generation:
            return self._population
        self._population = _DrawnOnce(
            generation=self.generation,
            seed=self.seed,
            sigma=self.distribution.sigma_of(self.state, self.generation, self.sigma0),
            n_evals=self.n_samples,
            names=("x",),
            shapes=(torch.Size([self.dim]),),
            center=self.mean,
            distribution=self.distribution,
            state=self.state,
        )
        return self._population

    def ask(self) -> torch.Tensor:
        """The ``[n_samples, dim]`` members of this generation (float64)."""
        return self.population().stacked_parameters(range(self.n_samples))

    def tell(self, values: Any) -> bool:
        """Ranks the members by ``values`` (lower is better; the scores are the centered ranks,
        as in ``ESOptimizer``) and moves the centre and the state.

        Returns:
            ``False`` when every value was non-finite under ``nonfinite="worst"`` (nothing
            changed but the generation counter), else ``True``.
        """
        fitness = check_fitness_matrix(values, self.n_samples, [-1.0], nonfinite=self.nonfinite)
        population = self.population()
        self.evaluations += self.n_samples
        if self.nonfinite == "worst":
            fitness, bad = rank_nonfinite_last(fitness, [-1.0])
        if self.nonfinite == "worst" and bool(bad.all()):
            warnings.warn(
                f"generation {self.generation}: every fitness value is non-finite; the centre "
                "and the distribution's state are unchanged",
                RuntimeWarning,
                stacklevel=2,
            )
            self.generation += 1
            self.skipped += 1
            return False
        # centered ranks, ESOptimizer's default shaping (CMA-ES and CEM use only the order)
        step = self.distribution.step(centered_ranks(-fitness[:, 0]), population, self.state)
        self.mean = self.mean + step.gradient.to(torch.float64)
        self.state = dict(step.state)
        self.generation += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        """Everything that shapes later generations, as tensors and plain values."""
        return {
            "distribution": self.distribution.config(),
            "mean": self.mean.clone(),
            "state": {
                k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in self.state.items()
            },
            "n_samples": self.n_samples,
            "seed": self.seed,
            "sigma0": self.sigma0,
            "nonfinite": self.nonfinite,
            "generation": self.generation,
            "evaluations": self.evaluations,
            "skipped": self.skipped,
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Continues the run :meth:`state_dict` saved (the distribution must be configured the
        same way); checked before anything changes."""
        if saved.get("distribution") != self.distribution.config():
            raise ValueError(
                f"the saved search used distribution {saved.get('distribution')!r}, this one "
                f"{self.distribution.config()!r}"
            )
        mean = torch.as_tensor(saved["mean"], dtype=torch.float64)
        if mean.shape != self.mean.shape:
            raise ValueError(f"the saved mean has shape {tuple(mean.shape)}, expected {self.dim}")
        state = self.distribution.check_state(dict(saved["state"]), self.dim)
        self.mean, self.state = mean.clone(), state
        self.n_samples, self.seed = int(saved["n_samples"]), int(saved["seed"])
        self.sigma0, self.nonfinite = float(saved["sigma0"]), str(saved["nonfinite"])
        self.generation, self.evaluations = int(saved["generation"]), int(saved["evaluations"])
        self.skipped = int(saved["skipped"])
        self._population = None
