"""σ schedules for OpenAI-ES and ARS: the scalar σ of generation ``g`` as a pure function of ``g``
and the run's base σ (``ESOptimizer.sigma``), so a resumed run needs nothing but the generation.

- :class:`ConstantSigma`: ``σ_g = σ`` (the default; bit-identical to a run without a schedule).
- :class:`ExponentialDecay`: ``σ_g = max(floor, σ · rate^g)``, the decay EvoJAX's OpenES uses
  (σ 0.04, rate 0.999, floor 0.01 on Brax Ant).
- :class:`FunctionSchedule`: any ``(generation, sigma) -> float``; a state dict records it by its
  name only (like a custom shaping function), so resuming needs the same function again.

Each schedule is a frozen dataclass of its hyperparameters; :meth:`SigmaSchedule.config` (its kind
and its fields) is what a state dict stores and :func:`schedule_from_config` reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .._validation import check_int, check_real

__all__ = [
    "SigmaSchedule",
    "ConstantSigma",
    "ExponentialDecay",
    "FunctionSchedule",
    "make_schedule",
    "schedule_from_config",
]


@dataclass(frozen=True)
class SigmaSchedule:
    """Base class: ``schedule(generation, sigma) -> σ of that generation``.

    Subclasses are frozen dataclasses with a ``kind``; a field with ``metadata={"saved": False}``
    (a function) is left out of :meth:`config`."""

    kind: ClassVar[str] = "constant"

    def __call__(self, generation: int, sigma: float) -> float:
        return sigma

    def config(self) -> dict[str, Any]:
        """``{"kind": kind, field: value, …}``: plain values, what a state dict stores."""
        saved = {
            f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("saved", True)
        }
        return {"kind": self.kind, **saved}


@dataclass(frozen=True)
class ConstantSigma(SigmaSchedule):
    """``σ_g = σ`` for every generation.

    Example:
        >>> ConstantSigma()(100, 0.1)
        0.1
    """


@dataclass(frozen=True)
class ExponentialDecay(SigmaSchedule):
    """``σ_g = max(floor, σ · rate^g)``: σ shrinks by ``rate`` per generation, never below
    ``floor``.

    Args:
        rate: decay per generation, in ``(0, 1]``.
        floor: the smallest σ (>= 0).

    Example:
        >>> schedule = ExponentialDecay(rate=0.5, floor=0.03)
        >>> [schedule(g, 0.2) for g in range(4)]
        [0.2, 0.1, 0.05, 0.03]
    """

    kind: ClassVar[str] = "exponential"
    rate: float
    floor: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "rate", check_real("rate", self.rate, low=0, high=1, low_open=True)
        )
        object.__setattr__(self, "floor", check_real("floor", self.floor, low=0))

    def __call__(self, generation: int, sigma: float) -> float:
        value = max(self.floor, sigma * self.rate ** check_int("generation", generation, low=0))
        if value <= 0:
            raise ValueError(
                f"ExponentialDecay(rate={self.rate}, floor={self.floor}) reached sigma 0 at "
                f"generation {generation}: give it a floor > 0"
            )
        return value


@dataclass(frozen=True)
class FunctionSchedule(SigmaSchedule):
    """A function ``(generation, sigma) -> σ`` as a schedule; its result must be a finite
    number > 0. State dicts store only ``name`` (default: the function's ``__name__``).

    Example:
        >>> def halve_at_100(generation, sigma):
        ...     return sigma if generation < 100 else sigma / 2
        >>> FunctionSchedule(halve_at_100)(150, 0.2)
        0.1
    """

    kind: ClassVar[str] = "function"
    function: Callable[[int, float], float] = field(
        compare=False, repr=False, metadata={"saved": False}
    )
    name: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(
                f"function must be callable (generation, sigma) -> sigma, got "
                f"{type(self.function).__name__} {self.function!r}"
            )
        if self.name is None:
            object.__setattr__(self, "name", getattr(self.function, "__name__", "custom"))
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")

    def __call__(self, generation: int, sigma: float) -> float:
        value = self.function(generation, sigma)
        return check_real(f"sigma schedule {self.name!r} at generation {generation}", value,
                          low=0, low_open=True)  # fmt: skip


def make_schedule(schedule: Any) -> SigmaSchedule:
    """A :class:`SigmaSchedule` from ``None`` or ``"constant"`` (constant σ), a schedule, or a
    function ``(generation, sigma) -> σ``.

    Example:
        >>> make_schedule(None)
        ConstantSigma()
        >>> make_schedule("cosine")
        Traceback (most recent call last):
        ...
        ValueError: sigma_schedule must be None, 'constant', a SigmaSchedule or a function (generation, sigma) -> sigma, got 'cosine'
    """  # noqa: E501
    if schedule is None or schedule == "constant":
        return ConstantSigma()
    if isinstance(schedule, SigmaSchedule):
        return schedule
    if callable(schedule):
        return FunctionSchedule(schedule)
    raise ValueError(
        "sigma_schedule must be None, 'constant', a SigmaSchedule or a function "
        f"(generation, sigma) -> sigma, got {schedule!r}"
    )


def schedule_from_config(
    config: dict[str, Any], current: SigmaSchedule | None = None
) -> SigmaSchedule:
    """The schedule a :meth:`SigmaSchedule.config` describes. A function schedule resolves to
    ``current`` when that is a function schedule of the same name; otherwise it cannot be
    rebuilt from a name, and the error says so.

    Example:
        >>> schedule_from_config({"kind": "exponential", "rate": 0.99, "floor": 0.01})
        ExponentialDecay(rate=0.99, floor=0.01)
    """
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"a sigma schedule's state must be a dict with a 'kind', got {config!r}")
    kind = config["kind"]
    if kind == FunctionSchedule.kind:
        if isinstance(current, FunctionSchedule) and current.name == config.get("name"):
            return current
        raise ValueError(
            f"the state's sigma schedule is the function {config.get('name')!r}, which a state "
            "dict holds by name only: build the optimizer with that function "
            "(distribution=OpenAIES(sigma_schedule=...)) before loading"
        )
    kinds = {cls.kind: cls for cls in (ConstantSigma, ExponentialDecay)}
    if kind not in kinds:
        raise ValueError(
            f"unknown sigma schedule kind {kind!r} (known: 'constant', 'exponential', 'function')"
        )
    values = {key: value for key, value in config.items() if key != "kind"}
    unknown = sorted(set(values) - {f.name for f in fields(kinds[kind])})
    if unknown:
        raise ValueError(f"a {kind!r} sigma schedule has no fields {unknown}, got {config!r}")
    return kinds[kind](**values)
