"""``ESState``: everything of an :class:`~es_opt.ESOptimizer` run that shapes future steps besides
the inner optimizer's and the objective's own state, as one explicit, validated object.

``ESOptimizer.state_dict()`` is this object's :meth:`ESState.as_dict` plus the inner optimizer's
``state_dict()``, the objective's and the layer-sampling strategy; loading goes through
:meth:`ESState.from_dict`, which validates every field before anything is replaced.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from ._arguments import check_n_samples, check_seed, check_shaping, check_sigma, check_weights
from .distributions import DISTRIBUTIONS, check_sigma_vector
from .distributions import _run_state as run_state
from .model import SamplingStrategy
from .perturbations import perturbation_from_state

__all__ = ["ESState", "StateField", "load_optimizer_state", "optimizer_state_dict"]

REQUIRED = ("generation", "seed", "sigma", "n_samples")

OPENAI_CONFIG: dict[str, Any] = {"name": "openai", "sigma_schedule": {"kind": "constant"}}
"""The search distribution of a state saved before distributions existed: OpenAI-ES, constant σ."""


@dataclass(frozen=True)
class ESState:
    """The run's counters and hyperparameters.

    Attributes:
        generation: steps completed so far (the next step's generation number).
        seed: the run's seed; every random draw derives from it.
        sigma: standard deviation of the perturbations.
        n_samples: evaluations per step (``n_samples / 2`` antithetic pairs).
        obj_weights: one weight per objective.
        shaping: the shaping's name (``"centered_ranks"``, ``"top_pairs(4)"``, a function's name).
        n_objectives: values per evaluation seen so far (``None`` before the first step).
        perturbation: the perturbation family's string form (``"dense"``, ``"lowrank(1)"``).
        noise: the noise scheme (``"mt19937"``, ``"philox"``). A state saved before these two
            fields existed ran dense ``"mt19937"`` noise, and loads as such.
        distribution: the search distribution's hyperparameters
            (:meth:`es_opt.distributions.SearchDistribution.config`); a state saved before it
            existed ran OpenAI-ES with a constant σ, and loads as such.
        sigma_vector: the per-parameter σ of PGPE / SNES, one entry per trainable parameter in
            the model's order (``None`` for OpenAI-ES, whose σ is ``sigma``).
        distribution_state: the state of any other distribution with one (CMA-ES: σ, evolution
            paths, covariance factors; tensors and plain values), empty for OpenAI-ES.
        restarts: the bookkeeping of a run that restarts (:mod:`es_opt.training.restarts`:
            the finished runs, the current one, the start point; tensors and plain values),
            ``None`` for a run without restarts (and a state saved before it existed). Saved
            only when set, so the state dict of a run without restarts is unchanged.

    Example:
        >>> state = ESState(generation=3, seed=0, sigma=0.1, n_samples=8, obj_weights=(1.0,),
        ...                 shaping="centered_ranks")
        >>> ESState.from_dict(state.as_dict(), state) == state
        True
    """

    generation: int
    seed: int
    sigma: float
    n_samples: int
    obj_weights: tuple[float, ...]
    shaping: str
    n_objectives: int | None = None
    perturbation: str = "dense"
    noise: str = "mt19937"
    distribution: dict[str, Any] = field(default_factory=lambda: dict(OPENAI_CONFIG))
    sigma_vector: torch.Tensor | None = field(default=None, compare=False)
    distribution_state: dict[str, Any] = field(default_factory=dict, compare=False)
    restarts: dict[str, Any] | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain values only (loadable with ``torch.load(weights_only=True)``)."""
        out = asdict(self)
        out["obj_weights"] = list(self.obj_weights)
        if out["restarts"] is None:
            del out["restarts"]
        return out

    @classmethod
    def initial(
        cls,
        seed: int,
        sigma: float,
        n_samples: int,
        obj_weights: tuple[float, ...],
        shaping: str,
        family: Any,
        distribution: Any,
        *,
        model: Any,
    ) -> ESState:
        """The state of a new run at generation 0 (arguments already checked); ``model`` gives
        the trainable parameters (``parameters()``: the float32 master copies of a
        low-precision net) that the distribution's state covers."""
        params = model.parameters()
        return cls(
            generation=0,
            seed=seed,
            sigma=sigma,
            n_samples=n_samples,
            obj_weights=obj_weights,
            shaping=shaping,
            perturbation=family.spec,
            noise=family.noise,
            distribution=distribution.config(),
            sigma_vector=run_state.initial_sigma_vector(distribution, sigma, params),
            distribution_state=run_state.initial_state(distribution, sigma, params),
        )

    @classmethod
    def from_dict(cls, state: dict[str, Any], current: ESState) -> ESState:
        """The state saved in ``state`` (keys missing from an older file keep ``current``'s
        values, except the required ones and the perturbation family: a file without it ran
        dense MT19937 noise), validated as the constructor validates arguments."""
        missing = [key for key in REQUIRED if key not in state]
        if missing:
            raise KeyError(f"ESOptimizer state_dict lacks {sorted(missing)}")
        generation = state["generation"]
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            raise ValueError(f"generation must be an int >= 0, got {generation!r}")
        # a state without the keys predates the families: it ran dense, per-pair MT19937 noise
        family = perturbation_from_state(
            state.get("perturbation", "dense"),
            state.get("noise", "mt19937" if "perturbation" not in state else None),
        )
        return replace(
            current,
            perturbation=family.spec,
            noise=family.noise,
            generation=int(generation),
            seed=check_seed(state["seed"]),
            sigma=check_sigma(state["sigma"]),
            # even for mirrored pairs: checked against the distribution once it is known
            n_samples=check_n_samples(state["n_samples"], antithetic=False),
            obj_weights=check_weights(state.get("obj_weights", current.obj_weights)),
            shaping=state.get("shaping", current.shaping),
            n_objectives=state.get("n_objectives"),
            restarts=_restarts_field(state),
            **_distribution_fields(state),
        )


def _restarts_field(state: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of the saved restart bookkeeping (a dict with str keys), or ``None`` (a run without
    restarts, or a state saved before they existed); its contents are checked by its owner."""
    saved = state.get("restarts")
    if saved is not None and (
        not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved)
    ):
        raise ValueError(f"restarts must be None or a dict with str keys, got {saved!r:.200}")
    return None if saved is None else copy.deepcopy(saved)


def _distribution_fields(state: dict[str, Any]) -> dict[str, Any]:
    """``distribution`` and ``sigma_vector`` of a saved state, checked (a state without them ran
    OpenAI-ES with a constant σ)."""
    config = state.get("distribution", OPENAI_CONFIG)
    if not isinstance(config, dict) or config.get("name") not in DISTRIBUTIONS:
        names = ", ".join(repr(n) for n in DISTRIBUTIONS)
        raise ValueError(f"distribution must be a dict named one of {names}, got {config!r}")
    saved = state.get("distribution_state", {})
    if not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved):
        raise ValueError(f"distribution_state must be a dict with str keys, got {saved!r}")
    vector = state.get("sigma_vector") if DISTRIBUTIONS[config["name"]].adapts_sigma else None
    if DISTRIBUTIONS[config["name"]].adapts_sigma:
        if vector is None:
            raise KeyError(
                f"ESOptimizer state_dict of a {config['name']!r} run lacks ['sigma_vector']"
            )
        vector = check_sigma_vector("sigma_vector", vector)
    return {"distribution": dict(config), "sigma_vector": vector, "distribution_state": saved}


class StateField:
    """An attribute of :class:`~es_opt.ESOptimizer` that reads and writes one field of its
    :class:`~es_opt.state.ESState` (validated by ``check`` on assignment)."""

    def __init__(
        self, key: str, check: Callable[..., Any] | None = None, *, with_run: bool = False
    ):
        self.key, self.check, self.with_run = key, check, with_run

    def __get__(self, es: Any, owner: type | None = None) -> Any:
        return self if es is None else getattr(es.state, self.key)

    def __set__(self, es: Any, value: Any) -> None:
        if self.check is not None:  # ``with_run``: the check also needs the optimizer
            value = self.check(es, value) if self.with_run else self.check(value)
        es.state = replace(es.state, **{self.key: value})


def optimizer_state_dict(es: Any) -> dict[str, Any]:
    """What :meth:`ESOptimizer.state_dict <es_opt.ESOptimizer.state_dict>` returns: the
    ``ESState`` as plain values, the layer-sampling strategy, the inner optimizer's and the
    objective's state and, for a low-precision net, the float32 master weights."""
    objective = es.objective_fn
    return {
        **es.state.as_dict(),
        "strategy": es.model.strategy.value,
        "optimizer": es.optimizer.state_dict(),
        "objective": objective.state_dict() if hasattr(objective, "state_dict") else {},
        **es._master.state_dict(),
    }


def load_optimizer_state(es: Any, state: dict[str, Any]) -> None:
    """Restores an :func:`optimizer_state_dict` into ``es``: everything is validated (the
    ``ESState``, the shaping, the distribution and its state against the model and the family,
    the master weights) before anything changes."""
    if "optimizer" not in state:
        raise KeyError("ESOptimizer state_dict lacks ['optimizer']")
    loaded = ESState.from_dict(state, es.state)
    if loaded.shaping == es.shaping_name:  # also a custom function, known by its name only
        shape = es._shape
    else:
        _, shape = check_shaping(loaded.shaping)
    strategy = SamplingStrategy(state["strategy"]) if "strategy" in state else None
    search, vector, distribution_state = run_state.restore(
        loaded.distribution,
        loaded.sigma_vector,
        loaded.distribution_state,
        es._distribution,
        perturbation_from_state(loaded.perturbation, loaded.noise),
        es._master.parameters(),
    )
    loaded = replace(loaded, sigma_vector=vector, distribution_state=distribution_state)
    check_n_samples(loaded.n_samples, search.antithetic)
    run_state.check_model(search, es.model, loaded.n_samples)
    es._master.load_state_dict(state.get("master_weights"))
    es.optimizer.load_state_dict(state["optimizer"])
    if state.get("objective") and hasattr(es.objective_fn, "load_state_dict"):
        es.objective_fn.load_state_dict(state["objective"])
    family = es._family
    if (loaded.perturbation, loaded.noise) != (family.spec, family.noise):
        family = perturbation_from_state(loaded.perturbation, loaded.noise)
    es.state, es._shape, es._family = loaded, shape, family
    es._distribution = search
    if strategy is not None:
        es.model.strategy = strategy
    es._pending = None
