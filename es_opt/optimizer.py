"""``ESOptimizer``: one evolution-strategies step, ask → evaluate → tell.

A step perturbs the selected parameters θ with ``n_samples / 2`` antithetic pairs θ ± σε_j,
evaluates the objective on each, shapes the fitness per objective (centered ranks by default) and
weights the objectives, estimates ``g = 1/(nσ) Σ_j (s⁺_j − s⁻_j) ε_j`` and hands ``−g`` to a torch
optimizer as the gradient (the objective is maximised). References: Salimans et al. 2017,
"Evolution Strategies as a Scalable Alternative to Reinforcement Learning"; Wierstra et al. 2014,
"Natural Evolution Strategies".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ._arguments import (
    check_model,
    check_n_samples,
    check_objective,
    check_one_optimizer,
    check_optimizer_holds,
    check_parameters,
    check_seed,
    check_shaping,
    check_sigma,
    check_weights,
)
from .distributions import SearchDistribution, make_distribution
from .distributions import _run_state as sigmas
from .evaluators import Evaluator, make_evaluator, resolve_backend
from .evaluators.batched import is_vectorized
from .fitness import check_fitness_matrix, check_nonfinite_policy, rank_nonfinite_last
from .history import History
from .loop import fit
from .model import Model
from .objective import Objective
from .optim.defaults import DEFAULT_BETAS, DEFAULT_LR, default_optimizer
from .perturbations import Perturbation, make_perturbation
from .population import Population
from .precision import MasterWeights
from .result import StepResult
from .state import ESState, StateField, load_optimizer_state, optimizer_state_dict
from .transitions import restart, skip_generation
from .update import UpdateRule, selected_center

__all__ = ["ESOptimizer", "DEFAULT_LR", "DEFAULT_BETAS", "default_optimizer"]


class ESOptimizer:
    """Evolution-strategies optimizer for a :class:`~es_opt.Model` and an
    :class:`~es_opt.Objective` (maximised).

    Args:
        model: the :class:`Model` (a bare ``nn.Module`` is wrapped with ``SamplingStrategy.ALL``).
        optimizer: the inner torch optimizer over the model's trainable parameters; defaults to
            :class:`es_opt.optim.RangerLite` with ``lr=0.01, betas=(0.9, 0.9)`` (β2 = 0.9 so
            that RAdam's warm-up lasts ~20 generations, not hundreds). ``sgd_optimizer`` is
            accepted as the ancestor's name for it.
        objective_fn: an :class:`Objective` or any callable ``(model, samples) -> score(s)``.
        obj_weights: one weight per objective (default ``[1.0]``); a negative weight minimises.
        sigma: standard deviation of the perturbations (> 0).
        n_samples: evaluations per step, an even integer ≥ 2 (``n_samples / 2`` pairs); any
            integer ≥ 2 the distribution accepts when it draws without mirroring (CMA-ES).
        devices: the ancestor's list of devices; parallel workers are pinned to them round-robin.
        n_workers: worker processes (``multiprocess``) or actors (``ray``).
        seed: every random draw of the run derives from it (and the generation, and the index).
        shaping: ``"centered_ranks"`` (default; ties share their average rank),
            ``"centered_ranks_ordinal"`` (ties ranked by position, as EvoTorch), ``"z_score"``,
            ``"raw"``, ``"top_pairs(k)"`` (ARS's top directions, :class:`es_opt.shaping.TopPairs`),
            or a function ``Tensor[n] -> Tensor[n]``.
        backend: ``"serial"``, ``"multiprocess"``, ``"ray"`` or an
            :class:`~es_opt.evaluators.Evaluator`. By default ``"serial"``, or ``"multiprocess"``
            when ``n_workers`` > 1 or ``devices`` is given (as the ancestor's ``n_workers`` meant
            a process pool); contradictions such as ``n_workers=2, backend="serial"`` and devices
            this machine lacks are ``ValueError`` s here, at construction (the whole rule:
            :func:`es_opt.evaluators.resolve_backend`).
        perturbation: the perturbation family: ``"dense"`` (the default: every parameter gets its
            own normal number) or :class:`~es_opt.perturbations.LowRank` (``"lowrank"``,
            ``"lowrank(R)"``: EGGROLL's rank-R products ``A Bᵀ/√R`` for every weight matrix,
            dense noise for vectors), or any :class:`~es_opt.perturbations.Perturbation`. See
            the perturbations page of the docs for when to choose which.
        noise: the noise scheme: ``None`` (the family's default: per-pair MT19937 for dense,
            counter-based Philox for low-rank), ``"mt19937"`` or ``"philox"`` (dense only:
            counter-based, drawn on the parameters' device).
        distribution: the search distribution (:mod:`es_opt.distributions`): ``"openai"`` (the
            default: OpenAI-ES, one scalar σ; ``OpenAIES(sigma_schedule=...)`` moves it with the
            generation), ``"pgpe"`` (PGPE, Sehnke et al. 2010) or ``"snes"`` (separable NES,
            Wierstra et al. 2014), which learn one σ per parameter starting from ``sigma``, or a
            configured :class:`~es_opt.distributions.SearchDistribution`. PGPE and SNES need
            ``perturbation="dense"``.
        master_weights: float32 copies of float16/bfloat16 parameters for the inner optimizer,
            so small steps accumulate (:mod:`es_opt.precision`); ``None``: on for such models.
        nonfinite: what a NaN or ±inf fitness value does: ``"raise"`` (the default: a
            ``ValueError`` naming the evaluation, nothing changes) or ``"worst"`` (the member
            ranks below every finite one, :func:`es_opt.fitness.rank_nonfinite_last`; a
            generation where every member is non-finite leaves the centre and the
            distribution's state as they were and warns). ``StepResult.nonfinite`` counts them.
        **backend_options: passed to the backend (e.g. ``ray_address``, ``max_retries``,
            ``eval_timeout``, ``worker_threads``, ``sync="replay"``).

    Example:
        >>> net = nn.Linear(3, 1)
        >>> class Closeness(Objective):
        ...     def __call__(self, model, samples):
        ...         return -float((model.net.weight - 1.0).square().sum())
        >>> es = ESOptimizer(model=Model(net), objective_fn=Closeness(), sigma=0.1,
        ...                  n_samples=20, seed=0,
        ...                  optimizer=torch.optim.SGD(net.parameters(), lr=0.05))
        >>> before = Closeness()(Model(net), None)
        >>> for _ in range(50):
        ...     result = es.gradient_step()
        >>> Closeness()(Model(net), None) > before
        True
    """

    def __init__(
        self,
        model: Model | nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        objective_fn: Objective | Callable[..., Any] | None = None,
        obj_weights: Sequence[float] = (1.0,),
        sigma: float = 0.1,
        n_samples: int = 100,
        devices: Sequence[str | torch.device] | None = None,
        n_workers: int | None = None,
        *,
        seed: int = 0,
        sgd_optimizer: torch.optim.Optimizer | None = None,
        shaping: str | Callable[[torch.Tensor], torch.Tensor] = "centered_ranks",
        backend: str | Evaluator | None = None,
        perturbation: str | Perturbation = "dense",
        noise: str | None = None,
        distribution: str | SearchDistribution = "openai",
        master_weights: bool | None = None,
        nonfinite: str = "raise",
        **backend_options: Any,
    ):
        model = check_model(model)
        optimizer = check_one_optimizer(optimizer, sgd_optimizer)
        check_objective(objective_fn)
        sigma = check_sigma(sigma)
        obj_weights, seed = check_weights(obj_weights), check_seed(seed)
        shaping_name, self._shape = check_shaping(shaping)
        family = make_perturbation(perturbation, noise)
        search = make_distribution(distribution)
        n_samples = check_n_samples(n_samples, search.antithetic)  # odd without mirroring
        sigmas.check_family(search, family)
        check_parameters(model)
        sigmas.check_model(search, model, n_samples)
        self.nonfinite = check_nonfinite_policy(nonfinite)
        # the ancestor's n_workers=4 meant a process pool; devices alone mean one per device
        backend, backend_options = resolve_backend(backend, n_workers, devices, **backend_options)
        if optimizer is None:
            optimizer = default_optimizer(model.parameters())
        check_optimizer_holds(optimizer, model)
        self._master = MasterWeights(model, optimizer, master_weights, backend, backend_options)
        self.model = model
        self.optimizer = optimizer
        self.objective_fn = objective_fn
        self.state = ESState.initial(
            seed, sigma, n_samples, obj_weights, shaping_name, family, search, model=self._master
        )
        self._family = family
        self._distribution = search
        self._pending: Population | None = None
        self._ask_time = 0.0
        self._evaluator: Evaluator | None = None
        self._backend = backend
        self._backend_options = backend_options
        self._closed = False

    # -- configuration -----------------------------------------------------------------------
    generation = StateField("generation")
    seed = StateField("seed", check_seed)
    sigma = StateField("sigma", check_sigma)
    n_samples = StateField("n_samples", sigmas.check_population_size, with_run=True)
    obj_weights = StateField("obj_weights", check_weights)
    shaping_name = StateField("shaping")
    n_objectives = StateField("n_objectives")

    @property
    def perturbation(self) -> Perturbation:
        """The perturbation family (its string form and noise scheme are in ``state_dict``)."""
        return self._family

    @property
    def distribution(self) -> SearchDistribution:
        """The search distribution (its hyperparameters are in ``state_dict``)."""
        return self._distribution

    @property
    def sigma_vector(self) -> torch.Tensor | None:
        """PGPE's / SNES's current σ, one value per trainable parameter in the model's order (a
        copy); ``None`` for OpenAI-ES, whose σ is :attr:`sigma` (or its schedule's value)."""
        vector = self.state.sigma_vector
        return None if vector is None else vector.clone()

    @property
    def sgd_optimizer(self) -> torch.optim.Optimizer:
        """The ancestor's name for :attr:`optimizer`."""
        return self.optimizer

    @property
    def evaluator(self) -> Evaluator:
        """The evaluation engine, started on first use."""
        if self._closed:
            raise RuntimeError("this ESOptimizer is closed; create a new one to continue")
        if self._evaluator is None:
            evaluator = make_evaluator(self._backend, **self._backend_options)
            evaluator.bind(self.model, self.objective_fn)
            evaluator.follow(self.optimizer)  # sync="replay": workers keep a replica of it
            self._evaluator = evaluator
        return self._evaluator

    @property
    def update_rule(self) -> UpdateRule:
        """Weights, shaping and search distribution: the update besides the inner optimizer."""
        return UpdateRule(tuple(self.obj_weights), self._shape, self._distribution)

    # -- the step ----------------------------------------------------------------------------
    def ask(self) -> Population:
        """The generation's population: ``n_samples`` perturbed parameter sets, rebuilt from seeds
        (``population.parameters(i)``, ``population.loaded(net, i)``). Evaluate them anywhere, then
        call :meth:`tell` with the fitness.

        Example:
            >>> es = ESOptimizer(nn.Linear(2, 1), objective_fn=lambda m, s: 0.0, n_samples=4)
            >>> pop = es.ask()
            >>> len(pop), pop.generation
            (4, 0)
        """
        names = self.model.selected_names(self.generation, self.seed)
        params = self._master.parameters()  # float32 master copies of a low-precision net
        chosen = [params[n] for n in names]
        position = {name: i for i, name in enumerate(params)}
        center = selected_center(params, names)
        state = sigmas.generation_state(
            self._distribution, self.state, self.generation, params, names
        )
        sigma = self._distribution.sigma_of(state, self.generation, self.sigma)
        self._pending = Population(
            generation=self.generation,
            seed=self.seed,
            sigma=sigma,
            n_evals=self.n_samples,
            names=names,
            shapes=tuple(p.shape for p in chosen),
            center=center,
            family=self._family,
            tensor_ids=tuple(position[n] for n in names),
            distribution=self._distribution,
            state=state,
        )
        self._ask_time = time.perf_counter()
        return self._pending

    def tell(self, fitness: Any, stats: Sequence[Any] | None = None) -> StepResult:
        """Completes the step asked for by :meth:`ask` with the population's fitness
        (``[n_samples, n_objectives]``, or ``[n_samples]`` for one objective), in evaluation order.

        Nothing changes if the fitness is invalid (wrong shape, a number of objectives that does
        not match ``obj_weights``, NaN or infinite values under ``nonfinite="raise"``): the error
        names the evaluation.
        """
        population = self._pending
        if population is None:
            raise RuntimeError("tell() needs a population: call ask() first")
        fitness = check_fitness_matrix(
            fitness, population.n_evals, self.obj_weights, nonfinite=self.nonfinite
        )
        eval_time = time.perf_counter() - self._ask_time
        return self._apply(population, fitness, stats, eval_time, self._ask_time)

    def gradient_step(self, samples: Any = None) -> StepResult:
        """One ES step: ask, evaluate the population with the backend, tell.

        If the objective fails, raises (``EvaluationError``, ``ValueError`` or ``TypeError``) and
        leaves the parameters, their ``.grad`` and the optimizer state exactly as they were.
        """
        start = time.perf_counter()
        evaluator = self.evaluator
        population = self.ask()
        try:
            evaluation = evaluator.evaluate(population, samples)
            vectorized = is_vectorized(self.objective_fn)
            source = "objective.evaluate_population" if vectorized else "the objective"
            fitness = check_fitness_matrix(
                evaluation.fitness,
                population.n_evals,
                self.obj_weights,
                nonfinite=self.nonfinite,
                source=source,
            )
        except BaseException:
            self._pending = None
            raise
        eval_time = time.perf_counter() - start
        return self._apply(population, fitness, evaluation.stats, eval_time, start)

    def _apply(
        self,
        population: Population,
        fitness: torch.Tensor,
        stats: Sequence[Any] | None,
        eval_time: float,
        start: float,
    ) -> StepResult:
        """The update of a checked fitness matrix: the search distribution's step (a pure
        function: the centre's gradient and, for PGPE/SNES, the next σ), then the inner
        optimizer's step on ``−g``. If that step raises, every ``.grad`` is put back and σ is
        unchanged. Under ``nonfinite="worst"`` the update ranks non-finite members last, and a
        generation without a finite member only advances the generation."""
        params = self._master.parameters()
        raw, bad = fitness, None
        if self.nonfinite == "worst":
            fitness, bad = rank_nonfinite_last(raw, self.obj_weights)
            if bool(bad.all()):
                return skip_generation(self, population, raw, bad, eval_time, start)
        try:
            step = self._master.update(self.optimizer, self.update_rule, population, fitness)
        except BaseException:
            self._pending = None
            raise
        sigma_vector, distribution_state = sigmas.next_state(
            self._distribution, self.state, params, population.names, step.state
        )
        if self._evaluator is not None:  # a backend that replays updates in its workers
            self._evaluator.updated(population, fitness, self.update_rule)
        if stats is not None and hasattr(self.objective_fn, "merge_stats"):
            self.objective_fn.merge_stats(list(stats))
        self.state = replace(
            self.state,
            generation=self.generation + 1,
            n_objectives=fitness.shape[1],
            sigma_vector=sigma_vector,
            distribution_state=distribution_state,
        )
        self._pending = None
        layers = self.model.selected_layer_names(population.generation, self.seed)
        step_time = time.perf_counter() - start
        return StepResult.of(
            population.generation, raw, step.gradient, eval_time, step_time, layers, bad
        )

    def fit(
        self,
        samples_fn: Callable[[int], Any] | None = None,
        generations: int = 100,
        callbacks: Sequence[Any] = (),
        stop_when: Callable[[StepResult], bool] | None = None,
    ) -> History:
        """Runs up to ``generations`` steps with ``samples_fn(generation)`` as each step's samples,
        reporting to ``callbacks``; returns the :class:`~es_opt.History`. See
        :func:`es_opt.loop.fit`.

        Example:
            >>> es = ESOptimizer(nn.Linear(2, 1), objective_fn=lambda m, s: 0.0, n_samples=4)
            >>> len(es.fit(generations=3)), es.generation
            (3, 3)
        """
        return fit(self, samples_fn, generations, callbacks, stop_when)

    def restart(self, **changes: Any) -> None:
        """Starts a new run (σ, ``n_samples``, centre, the distribution's and the optimizer's
        state afresh; the generation counts on): :func:`es_opt.transitions.restart`."""
        restart(self, **changes)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything that shapes future steps: the :class:`~es_opt.state.ESState` (generation,
        seed, σ, n_samples, weights, shaping, perturbation family, search distribution and its
        state), the layer-sampling strategy, the inner optimizer's and the objective's state and,
        for a low-precision net, the float32 master weights. Loads with
        ``torch.load(weights_only=True)``. The net's weights are saved separately
        (``net.state_dict()``), or together by :func:`es_opt.training.save_checkpoint`."""
        return optimizer_state_dict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; the next step continues the saved run bit for bit.
        Everything is validated before anything changes."""
        load_optimizer_state(self, state)

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Shuts the backend's workers down; harmless to call twice."""
        evaluator, self._evaluator = self._evaluator, None
        self._closed = True
        if evaluator is not None:
            evaluator.close()

    def __enter__(self) -> ESOptimizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._evaluator is not None:
                self._evaluator.close()
        except Exception:  # interpreter shutdown: nothing sensible left to do
            pass

    def __repr__(self) -> str:
        return (
            f"ESOptimizer(sigma={self.sigma}, n_samples={self.n_samples}, "
            f"obj_weights={list(self.obj_weights)}, shaping={self.shaping_name!r}, "
            f"perturbation={self._family!r}, distribution={self._distribution!r}, "
            f"seed={self.seed}, generation={self.generation}, "
            f"optimizer={type(self.optimizer).__name__}, model={self.model!r})"
        )
