"""The search-distribution interface: what an ES step does with its shaped scores.

A search distribution is a Gaussian ``N(θ, diag(σ²))`` over the selected parameters. Each step
draws ``P`` antithetic pairs ``θ ± σ ⊙ z_j`` (``z_j`` standard normal, rebuilt from seeds), and the
distribution turns the pairs' shaped scores into

- the centre's ascent direction ``g`` (the optimizer writes ``−g`` into ``.grad`` and the inner
  torch optimizer steps: SGD, Adam, RangerLite, Ligi, ClipUp all work with every distribution);
- the next σ: unchanged (OpenAI-ES, a scalar σ, optionally following a schedule), or a new
  per-parameter vector (PGPE, SNES).

The classes only hold hyperparameters; the updates are pure functions on tensors
(:func:`es_opt.distributions.pgpe.pgpe_step`, :func:`es_opt.distributions.snes.snes_step`), and σ
itself lives in the optimizer's state, so a step that fails changes nothing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
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
        gradient: the centre's ascent direction, flat over the selected parameters.
        sigma: the next per-parameter σ (same shape as the gradient), or ``None`` when the
            distribution keeps a scalar σ.
    """

    gradient: torch.Tensor
    sigma: torch.Tensor | None


class SearchDistribution(ABC):
    """Base class of the search distributions (see the module docstring).

    Subclasses set :attr:`name` (the string accepted by ``ESOptimizer``), :attr:`adapts_sigma`
    (whether σ is a per-parameter vector updated every step) and implement :meth:`step`,
    :meth:`config` and :meth:`from_config`.
    """

    name: ClassVar[str]
    adapts_sigma: ClassVar[bool]

    @abstractmethod
    def step(
        self,
        scores: torch.Tensor,
        noise_rows: Any,
        *,
        sigma: float | torch.Tensor,
        dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> DistributionStep:
        """The centre's ascent direction and the next σ from one generation.

        Args:
            scores: shaped, weighted scores ``[n_evals]`` in evaluation order (``θ + σ⊙z_j`` at
                index ``2j``, ``θ − σ⊙z_j`` at ``2j + 1``).
            noise_rows: ``range -> Tensor[len(range), dim]``, the standard normal ``z_j`` of
                those pairs.
            sigma: the generation's σ: a float (OpenAI-ES) or a ``[dim]`` tensor (PGPE, SNES).
            dim: number of perturbed parameters.
            dtype, device: of the centre (and of the returned tensors).
        """

    def sigma_at(self, generation: int, sigma: float) -> float:
        """The scalar σ a generation perturbs with, from the run's base σ (a schedule may
        change it; adaptive distributions use their vector and ignore this)."""
        return sigma

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
    """A distribution with a per-parameter σ updated every step (PGPE, SNES): :meth:`step` turns a
    scalar σ into the ``[dim]`` vector and calls :meth:`update`, the algorithm's own equations."""

    adapts_sigma: ClassVar[bool] = True

    def step(
        self,
        scores: torch.Tensor,
        noise_rows: Any,
        *,
        sigma: float | torch.Tensor,
        dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> DistributionStep:
        if not isinstance(sigma, torch.Tensor):
            sigma = torch.full((dim,), float(sigma), dtype=dtype, device=device)
        gradient, new_sigma = self.update(scores, noise_rows, sigma)
        return DistributionStep(gradient=gradient, sigma=new_sigma)

    @abstractmethod
    def update(
        self, scores: torch.Tensor, noise_rows: Any, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(centre gradient, next σ)`` from the scores, the pairs' noise and the ``[dim]`` σ."""
