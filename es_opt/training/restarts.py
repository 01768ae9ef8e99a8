"""IPOP / BIPOP restarts of an :class:`~es_opt.ESOptimizer` run inside
:meth:`~es_opt.ESOptimizer.fit`: the callback :class:`RestartOnStop`.

After every step it reads the run's state as the standard termination criteria see it
(:mod:`es_opt.distributions.stopping`): the values to minimise are minus the weighted objectives,
``v_i = −Σ_k w_k F_ik`` (``w`` = ``es.obj_weights``), the mean is the flat centre θ, the state is
the search distribution's (CMA-ES: σ, ``C``'s factors, ``p_c``) and σ is the one the next
generation is drawn with (PGPE / SNES / CEM: the per-parameter σ). When a criterion holds, the run
ends and, unless the restarts are spent, the next starts (:meth:`ESOptimizer.restart
<es_opt.ESOptimizer.restart>`) with the schedule's ``λ`` and ``σ``
(:class:`~es_opt.distributions.restart_schedule.RestartSchedule`, the one schedule that
:class:`~es_opt.distributions.restarts.Restarts` uses too; ``λ₀``, ``σ₀`` are the optimizer's
``n_samples`` and ``sigma`` when the first run starts):

- IPOP: ``λ_k = λ₀ 2^k``, ``σ₀``;
- BIPOP: large runs ``λ₀ 2^{k+1}, σ₀`` interleaved with small runs ``λ₀ (2^k)^{U'²}``,
  ``σ₀ 10^{−2U}``, each regime given about the same evaluations.

Every run starts from the parameters the first run started from (or from ``x0(generator)``, a
generator seeded by ``(seed, run)``), with the distribution's and the inner optimizer's state
afresh; the generation counter keeps counting, so every run draws new noise.

**Where the bookkeeping lives.** The finished runs, the current one and the start point are kept
in the optimizer's state, ``es.state.restarts`` (:class:`~es_opt.state.ESState`), not on the
callback: ``es.state_dict()`` is, by design, everything that shapes the run's future steps, and
a restart shapes them. So every checkpoint of the run (:func:`es_opt.training.save_checkpoint`,
:class:`~es_opt.training.Checkpoint`, a ``torch.save(es.state_dict())``) carries it without
knowing about this callback, and a run resumed from one continues its restart sequence bit for
bit. List ``RestartOnStop`` before :class:`~es_opt.training.Checkpoint`, so that a checkpoint
written after a step holds that step's bookkeeping (and the restart it caused); a resumed run
whose bookkeeping is behind the optimizer is refused. Once the restarts are spent, a later
``fit`` with this callback stops after its first step. A run record (:mod:`es_opt.record`)
replays one run's updates, not a restart: the two do not combine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from .._validation import check_choice, check_int
from ..distributions.restart_schedule import STRATEGIES, RestartSchedule, observe_generation
from ..distributions.stopping import StopConditions
from ..loop import Callback
from ..precision import stepped_parameters
from ..result import StepResult

if TYPE_CHECKING:
    from ..optimizer import ESOptimizer

__all__ = ["RestartOnStop"]

StartPoint = Callable[[torch.Generator], Mapping[str, torch.Tensor]]

_CONFIG = ("strategy", "seed", "max_restarts", "conditions")


class RestartOnStop(Callback):
    """Restarts the run (IPOP or BIPOP) whenever a termination criterion holds, and stops the
    fit once the restarts are spent.

    Args:
        strategy: ``"ipop"`` (the default) or ``"bipop"``.
        max_restarts: restarts after the first run (BIPOP: large runs only, as pycma counts).
        conditions: the termination criteria of a run (:class:`StopConditions`; the default
            thresholds of pycma). ``maxiter`` caps every run's generations.
        x0: where each restart starts: ``x0(generator) -> {name: tensor}`` for every trainable
            parameter, drawn from a generator seeded by ``(seed, run)``; ``None`` (the default)
            restarts from the parameters the first run started from (kept in the state).
        seed: seeds BIPOP's draws and ``x0``'s generator (default: the optimizer's seed).

    Attributes:
        runs: each finished run's record: ``run``, ``regime`` (``"large"``/``"small"``),
            ``n_samples`` (λ), ``sigma0`` (σ₀), ``maxiter``, ``start_generation``,
            ``generations``, ``evaluations``, ``best_value`` (the lowest ``−Σ w_k F_k`` seen),
            per generation the ``best`` and ``median`` value, and the ``stop`` reasons.
        current: the record of the run in progress (``None`` once the restarts are spent).
        reason: why the fit stopped, once the restarts are spent.

    Example:
        >>> import es_opt
        >>> from torch import nn
        >>> net = nn.Linear(1, 1)
        >>> def quadratic(model, samples):
        ...     return -float((model.net.weight - 0.5).square().sum() + model.net.bias.square())
        >>> es = es_opt.ESOptimizer(net, torch.optim.SGD(net.parameters(), lr=1.0),
        ...                         objective_fn=quadratic, sigma=0.3, n_samples=6,
        ...                         distribution="cma")
        >>> restarts = RestartOnStop("ipop", max_restarts=2)
        >>> history = es.fit(generations=2000, callbacks=[restarts])
        >>> [run["n_samples"] for run in restarts.runs], restarts.current is None
        ([6, 12, 24], True)
    """

    def __init__(
        self,
        strategy: str = "ipop",
        *,
        max_restarts: int = 9,
        conditions: StopConditions | None = None,
        x0: StartPoint | None = None,
        seed: int | None = None,
    ):
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.max_restarts = check_int("max_restarts", max_restarts, low=0)
        if conditions is not None and not isinstance(conditions, StopConditions):
            raise TypeError(f"conditions must be a StopConditions or None, got {conditions!r}")
        if x0 is not None and not callable(x0):
            raise TypeError(f"x0 must be a function generator -> {{name: tensor}}, got {x0!r}")
        self.conditions = conditions or StopConditions()
        self.x0 = x0
        self.seed = None if seed is None else check_int("seed", seed, low=0)
        self.reason: str | None = None
        self._book: dict[str, Any] | None = None
        self._schedule: RestartSchedule | None = None

    @property
    def runs(self) -> list[dict[str, Any]]:
        return [] if self._book is None else self._book["runs"]

    @property
    def current(self) -> dict[str, Any] | None:
        return None if self._book is None else self._book["current"]

    # -- the callback -------------------------------------------------------------------------
    def on_start(self, es: ESOptimizer, generations: int) -> None:
        self.reason = None
        book = es.state.restarts
        if book is None:
            book = self._new_book(es)
        else:
            self._check_book(es, book)
        self._schedule = RestartSchedule(
            book["strategy"],
            book["n_samples0"],
            book["sigma0"],
            dim=book["dim"],
            seed=book["seed"],
            max_restarts=book["max_restarts"],
            maxiter=book["maxiter"],
            antithetic=es.distribution.antithetic,
        )
        if es.state.restarts is not book:
            es.state = replace(es.state, restarts=book)
        self._book = book

    def on_step(self, es: ESOptimizer, result: StepResult) -> bool:
        book, schedule = es.state.restarts, self._schedule
        if book is None or schedule is None:
            raise RuntimeError("RestartOnStop.on_step called before on_start")
        self._book = book
        if book["done"]:
            self.reason = (
                f"RestartOnStop: the restarts were spent before generation {es.generation}"
            )
            return True
        if result.fitness is None:
            raise ValueError(
                f"the result of generation {result.generation} carries no fitness matrix; "
                "RestartOnStop needs ESOptimizer's own StepResult"
            )
        record = book["current"]
        weights = torch.tensor(es.obj_weights, dtype=torch.float64)
        values = -(result.fitness.to(torch.float64) @ weights)
        reasons = observe_generation(
            record,
            values,
            StopConditions(**book["conditions"]),
            state=es.state.distribution_state,
            sigma=_sigma(es),
            mean=torch.cat([p.detach().reshape(-1) for p in stepped_parameters(es).values()]),
            n_samples=es.n_samples,
        )
        record["generations"] = len(record["best"])
        book["generation"] = es.generation
        if not reasons:
            return False
        record["stop"] = reasons
        finished = [*book["runs"], record]
        if schedule.spent(finished):
            book["runs"], book["current"], book["done"] = finished, None, True
            self.reason = (
                f"RestartOnStop: run {record['run']} ({record['regime']}, λ={record['n_samples']}) "
                f"stopped ({', '.join(reasons)}) at generation {result.generation} and the "
                f"{schedule.max_restarts} restarts are spent"
            )
            return True
        following = schedule.next_record(finished)
        following.update(start_generation=es.generation, generations=0)
        es.restart(
            sigma=following["sigma0"],
            n_samples=following["n_samples"],
            center=self._start_point(book, schedule, following["run"]),
        )
        book["runs"], book["current"] = finished, following
        return False

    # -- the bookkeeping ----------------------------------------------------------------------
    def _new_book(self, es: ESOptimizer) -> dict[str, Any]:
        params = stepped_parameters(es)
        dim = sum(p.numel() for p in params.values())
        conditions = self.conditions
        schedule = RestartSchedule(
            self.strategy,
            es.n_samples,
            es.sigma,
            dim=dim,
            seed=es.seed if self.seed is None else self.seed,
            max_restarts=self.max_restarts,
            maxiter=conditions.maxiter or None,
            antithetic=es.distribution.antithetic,
        )
        first = schedule.next_record([])
        first.update(start_generation=es.generation, generations=0)
        start = None
        if self.x0 is None:
            start = {name: p.detach().clone() for name, p in params.items()}
        return {
            "strategy": schedule.strategy,
            "seed": schedule.seed,
            "max_restarts": schedule.max_restarts,
            "conditions": conditions.to_dict(),
            "n_samples0": schedule.n_samples0,
            "sigma0": schedule.sigma0,
            "dim": dim,
            "maxiter": schedule.maxiter0,
            "start": start,
            "runs": [],
            "current": first,
            "generation": es.generation,
            "done": False,
        }

    def _check_book(self, es: ESOptimizer, book: dict[str, Any]) -> None:
        """The saved bookkeeping continues this callback's restarts of ``es``'s run."""
        missing = sorted({*_CONFIG, "n_samples0", "sigma0", "dim", "maxiter", "start", "runs",
                          "current", "generation", "done"} - set(book))  # fmt: skip
        if missing:
            raise ValueError(f"the optimizer's restart bookkeeping lacks {missing}")
        ours = {
            "strategy": self.strategy,
            "seed": es.seed if self.seed is None else self.seed,
            "max_restarts": self.max_restarts,
            "conditions": self.conditions.to_dict(),
        }
        for key, value in ours.items():
            if book[key] != value:
                raise ValueError(
                    f"the optimizer's run restarts with {key}={book[key]!r}, this RestartOnStop "
                    f"with {key}={value!r}"
                )
        if (book["start"] is None) != (self.x0 is not None):
            saved = "from x0" if book["start"] is None else "from the first run's parameters"
            raise ValueError(f"the optimizer's run restarts {saved}: pass x0 only if it did")
        if book["generation"] != es.generation:
            raise ValueError(
                f"the optimizer's restart bookkeeping is at generation {book['generation']} but "
                f"the optimizer at {es.generation}: a checkpoint saved before RestartOnStop saw "
                "the step (list RestartOnStop before Checkpoint)"
            )

    def _start_point(
        self, book: dict[str, Any], schedule: RestartSchedule, run: int
    ) -> dict[str, torch.Tensor]:
        if book["start"] is not None:
            return book["start"]
        return dict(self.x0(schedule.generator(run, 0)))


def _sigma(es: Any) -> float | torch.Tensor:
    """The σ the next generation is drawn with: the per-parameter σ of PGPE / SNES / CEM, else
    the distribution's σ (CMA-ES: its adapted σ; OpenAI-ES: ``sigma`` or its schedule's)."""
    vector = es.sigma_vector
    if vector is not None:
        return vector
    return es.distribution.sigma_of(es.state.distribution_state, es.generation, es.sigma)
