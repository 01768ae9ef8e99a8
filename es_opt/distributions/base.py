"""The search-distribution contract: the one path from shaped scores to the centre's step.

A search distribution is a Gaussian over the selected parameters, ``N(θ, σ² C)``. Each generation
draws members from the perturbation family's standard normal noise ``z`` — in mirrored pairs
``θ ± σ y_j`` (OpenAI-ES, PGPE, SNES; CMA-ES optionally) or one draw per member — where the
distribution decides σ (a scalar, or one value per parameter) and the direction ``y``:

=====================  ===================  ====================================
distribution           σ                    direction ``y``
=====================  ===================  ====================================
OpenAI-ES              scalar (schedule)    ``z`` (dense or low-rank family)
PGPE, SNES             per parameter        ``z`` (members ``θ ± σ ⊙ z``)
separable CMA-ES       scalar, adapted      ``D ⊙ z`` (``C = diag(D²)``)
CMA-ES                 scalar, adapted      ``B D z`` (``C = B D² Bᵀ``)
=====================  ===================  ====================================

Its :meth:`SearchDistribution.step` turns the generation's shaped scores into the centre's ascent
direction ``g`` (the optimizer writes ``−g`` into ``.grad`` and the inner torch optimizer steps:
SGD, Adam, RangerLite, Ligi, ClipUp all work with every distribution; SGD with lr 1 applies ``g``
as it is, which is CMA-ES's own mean update) and the distribution's next state (σ, evolution
paths, covariance factors). The state lives in the optimizer's ``ESState``, so a step that fails
changes nothing, and a resumed or replaying run continues from it bit for bit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .._validation import check_real, is_real

__all__ = [
    "AdaptiveDistribution",
    "SearchDistribution",
    "DistributionStep",
    "check_sigma_vector",
    "check_stdev_bounds",
    "clip_sigma",
]


@dataclass(frozen=True)
class DistributionStep:
    """What one step of a search distribution produces.

    Attributes:
        gradient: the centre's ascent direction, flat over the selected parameters (the
            optimizer writes ``−gradient`` into ``.grad``; SGD with lr 1 moves the centre by it).
        state: the distribution's next state, with the keys of :meth:`SearchDistribution.init_state`
            (PGPE/SNES: ``{"sigma": σ'}`` of the selected parameters; OpenAI-ES: empty).
    """

    gradient: torch.Tensor
    state: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sigma(self) -> torch.Tensor | None:
        """The next per-parameter σ of PGPE / SNES (``None`` for the other distributions)."""
        sigma = self.state.get("sigma")
        return sigma if isinstance(sigma, torch.Tensor) and sigma.dim() == 1 else None


class SearchDistribution(ABC):
    """Base class of the search distributions: the one contract between shaped scores and the
    centre's step (see the module docstring and docs/architecture.md).

    A distribution owns

    1. how a member is drawn from the family's noise: with :attr:`antithetic` members come in
       mirrored pairs ``θ ± σ y_j`` (else ``θ + σ y_i``, one draw each), σ is :meth:`sigma_of`
       and ``y = noise_map(z)`` (:meth:`noise_map`: identity, ``D ⊙ z`` or ``A z``);
    2. its state (:meth:`init_state`; kept in ``ESState``, checkpoints and replay);
    3. :meth:`step`: shaped scores and the population → the centre's ascent direction and the
       next state. Every run goes through it, the default OpenAI-ES included.

    Subclasses set :attr:`name` (the string accepted by ``ESOptimizer``) and implement
    :meth:`step`, :meth:`config` and :meth:`from_config`.

    Attributes:
        adapts_sigma: PGPE / SNES: σ is a vector over every trainable parameter
            (``ESState.sigma_vector``), of which each generation reads and updates the selected
            slice (its state is ``{"sigma": slice}``).
        full_model: the distribution models all trainable parameters jointly (CMA-ES), so every
            generation must select all of them.
        antithetic: members in mirrored pairs (the default of every distribution but CMA-ES).
    """

    name: ClassVar[str]
    adapts_sigma: ClassVar[bool] = False
    full_model: ClassVar[bool] = False
    antithetic: bool = True

    def check(self, n_samples: int, dim: int) -> None:
        """Raises ``ValueError`` if the distribution cannot run ``n_samples`` members over
        ``dim`` parameters (called at construction, before anything changes)."""
        return None

    def init_state(
        self,
        sigma: float,
        dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        """The state at generation 0 over ``dim`` parameters with initial step size ``sigma``
        (empty for a distribution without state)."""
        return {}

    def sigma_of(self, state: Mapping[str, Any], generation: int, sigma: float) -> Any:
        """The σ a generation's members are drawn with, from the state and the run's base σ."""
        return self.sigma_at(generation, sigma)

    def noise_map(self, state: Mapping[str, Any]) -> torch.Tensor | None:
        """``None`` (``y = z``), a ``[dim]`` tensor ``D`` (``y = D ⊙ z``) or a ``[dim, dim]``
        matrix ``A`` (``y = A z``): how a member's direction is made from the noise."""
        return None

    @abstractmethod
    def step(
        self, scores: torch.Tensor, population: Any, state: Mapping[str, Any]
    ) -> DistributionStep:
        """The centre's ascent direction and the next state from one generation.

        Args:
            scores: shaped, weighted scores ``[n_evals]`` in evaluation order, higher is better
                (with mirroring ``θ + σ y_j`` at index ``2j``, ``θ − σ y_j`` at ``2j + 1``).
            population: the :class:`~es_opt.population.Population` the scores belong to (its
                noise rows, directions, centre, σ, dtype and device).
            state: the distribution's state the population was drawn from.
        """

    def sigma_at(self, generation: int, sigma: float) -> float:
        """The scalar σ a generation perturbs with, from the run's base σ (a schedule may
        change it; adaptive distributions use their vector and ignore this)."""
        return sigma

    def check_state(self, state: Mapping[str, Any], dim: int) -> dict[str, Any]:
        """A loaded state, checked against :meth:`init_state`'s keys (raises ``ValueError``)."""
        expected = set(self.init_state(1.0, max(1, dim)))
        if set(state) != expected:
            raise ValueError(
                f"the {self.name!r} distribution's state must hold {sorted(expected)}, got "
                f"{sorted(state)}"
            )
        return dict(state)

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The hyperparameters as plain values (``name`` included), for state dicts."""

    @classmethod
    @abstractmethod
    def from_config(
        cls, config: dict[str, Any], current: SearchDistribution | None = None
    ) -> SearchDistribution:
        """The distribution :meth:`config` describes (``current`` resolves what a state dict
        can only name, such as a σ schedule given as a function)."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def check_sigma_vector(name: str, sigma: Any) -> torch.Tensor:
    """``sigma`` as a 1-D floating tensor of finite values > 0; the error names the argument and
    the first bad entry.

    Example:
        >>> check_sigma_vector("sigma", torch.tensor([0.1, 0.0]))
        Traceback (most recent call last):
        ...
        ValueError: sigma must hold finite values > 0, got 0.0 at index 1
    """
    if not isinstance(sigma, torch.Tensor) or not sigma.is_floating_point() or sigma.dim() != 1:
        shape = tuple(sigma.shape) if isinstance(sigma, torch.Tensor) else type(sigma).__name__
        raise TypeError(f"{name} must be a 1-D floating-point tensor, got {shape}")
    bad = ~(torch.isfinite(sigma) & (sigma > 0))
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{name} must hold finite values > 0, got {float(sigma[index])!r} at index {index}"
        )
    return sigma


def _optional_positive(name: str, value: Any) -> float | None:
    return None if value is None else check_real(name, value, low=0, low_open=True)


def check_stdev_bounds(
    stdev_min: Any, stdev_max: Any, stdev_max_change: Any
) -> tuple[float | None, float | None, float | None]:
    """Validated ``(stdev_min, stdev_max, stdev_max_change)``: each ``None`` or a finite number,
    the bounds > 0 with ``stdev_min <= stdev_max``, the relative change in ``(0, 1)`` (a change of
    1 or more would let σ reach 0).

    Example:
        >>> check_stdev_bounds(0.5, 0.1, None)
        Traceback (most recent call last):
        ...
        ValueError: stdev_min must be <= stdev_max, got stdev_min=0.5 and stdev_max=0.1
    """
    low = _optional_positive("stdev_min", stdev_min)
    high = _optional_positive("stdev_max", stdev_max)
    if low is not None and high is not None and low > high:
        raise ValueError(
            f"stdev_min must be <= stdev_max, got stdev_min={stdev_min!r} and "
            f"stdev_max={stdev_max!r}"
        )
    change = None
    if stdev_max_change is not None:
        change = check_real(
            "stdev_max_change", stdev_max_change, low=0, high=1, low_open=True, high_open=True
        )
    return low, high, change


def check_learning_rate(name: str, value: Any) -> float:
    """A learning rate: a finite number >= 0 (0 keeps σ fixed)."""
    return check_real(name, value, low=0)


def clip_sigma(
    old: torch.Tensor,
    new: torch.Tensor,
    *,
    max_change: float | None,
    low: float | None,
    high: float | None,
) -> torch.Tensor:
    """``new`` limited to a relative change of ``max_change`` from ``old`` (each entry within
    ``old · (1 ± max_change)``, Toklu et al. 2020's ``stdev_max_change``), then to the bounds
    ``[low, high]``: the bounds are hard, so where they and the change limit disagree the bounds
    win.

    Example:
        >>> clip_sigma(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.5]), max_change=0.2,
        ...            low=None, high=None).tolist()
        [1.2000000476837158, 0.800000011920929]
    """
    out = new
    if max_change is not None:
        allowed = old.abs() * max_change
        out = torch.minimum(torch.maximum(out, old - allowed), old + allowed)
    if low is not None:
        out = out.clamp(min=low)
    if high is not None:
        out = out.clamp(max=high)
    return out


def default_snes_stdev_lr(dim: int) -> float:
    """SNES's default σ learning rate, ``η_σ = (3 + ln d) / (5 √d)`` (Wierstra et al. 2014,
    Table 1).

    Example:
        >>> round(default_snes_stdev_lr(100), 4)
        0.1521
    """
    if not is_real(dim) or dim < 1:
        raise ValueError(f"dim must be an int >= 1, got {dim!r}")
    return (3.0 + math.log(dim)) / (5.0 * math.sqrt(dim))


class AdaptiveDistribution(SearchDistribution):
    """A distribution with a per-parameter σ updated every step (PGPE, SNES). Its state is the
    selected parameters' σ, ``{"sigma": [dim] tensor}``; :meth:`step` reads the pairs' noise from
    the population and calls :meth:`update`, the algorithm's own equations."""

    adapts_sigma: ClassVar[bool] = True

    def init_state(
        self,
        sigma: float,
        dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        return {"sigma": torch.full((dim,), float(sigma), dtype=dtype, device=device)}

    def sigma_of(self, state: Mapping[str, Any], generation: int, sigma: float) -> Any:
        return state["sigma"]

    def step(
        self, scores: torch.Tensor, population: Any, state: Mapping[str, Any]
    ) -> DistributionStep:
        sigma = state["sigma"]
        if not isinstance(sigma, torch.Tensor):  # a population built by hand with a scalar σ
            center = population.center
            sigma = torch.full(
                (population.dim,), float(sigma), dtype=center.dtype, device=center.device
            )
        gradient, new_sigma = self.update(scores, population.perturbations, sigma)
        return DistributionStep(gradient=gradient, state={"sigma": new_sigma})

    @abstractmethod
    def update(
        self, scores: torch.Tensor, noise_rows: Any, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(centre gradient, next σ)`` from the scores, the pairs' noise and the ``[dim]`` σ."""
