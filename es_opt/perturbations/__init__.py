"""Perturbation families (dense, low-rank) and counter-based noise.

- :class:`Dense`: every entry gets its own normal number (Salimans et al. 2017).
- :class:`LowRank`: EGGROLL's ``A Bᵀ / √r`` for every matrix (Sarkar et al. 2025).
- :func:`counter_normals`: Philox4x32-10 normals for any ``(seed, generation, pair, tensor)``.

:func:`make_perturbation` turns the string forms (``"dense"``, ``"lowrank"``, ``"lowrank(4)"``)
into a family; :func:`perturbation_from_state` reads what a saved state names.
"""

from __future__ import annotations

from .._spec import Form, parse_spec
from .base import NOISE_SCHEMES, Perturbation, check_noise, matrix_shape
from .counter_noise import counter_normals, philox4x32
from .dense import Dense
from .low_rank import LowRank, low_rank_delta, low_rank_factors, low_rank_linear, low_rank_sum

__all__ = [
    "FORMS",
    "NOISE_SCHEMES",
    "Dense",
    "LowRank",
    "Perturbation",
    "counter_normals",
    "low_rank_delta",
    "low_rank_factors",
    "low_rank_linear",
    "low_rank_sum",
    "make_perturbation",
    "matrix_shape",
    "perturbation_from_state",
    "philox4x32",
]


FORMS = (Form("dense"), Form("lowrank", "R", default=1, old_names=("low_rank", "low-rank")))
"""The string forms of a family: ``"dense"``, ``"lowrank"`` (rank 1) and ``"lowrank(R)"``."""


def make_perturbation(
    perturbation: str | Perturbation = "dense", noise: str | None = None
) -> Perturbation:
    """A family from its string form or an instance, with the noise scheme ``noise``.

    The noise scheme is part of the family (``Dense(noise="philox")``); ``noise`` is an alias
    checked against it: ``None`` keeps the family's scheme (``"mt19937"`` for ``"dense"``,
    ``"philox"`` for low-rank), a scheme the family cannot draw, or one that contradicts a
    family instance, is a ``ValueError``.

    Accepted strings: ``"dense"``, ``"lowrank"`` (rank 1) and ``"lowrank(R)"``. The spelling
    ``"lowrank:R"`` of earlier releases still works, with a :class:`DeprecationWarning`.

    Example:
        >>> make_perturbation("lowrank(4)")
        LowRank(rank=4)
        >>> make_perturbation("dense", noise="philox")
        Dense(noise='philox')
    """
    if noise is not None:
        check_noise(noise)
    if isinstance(perturbation, Perturbation):
        if noise is not None and noise != perturbation.noise:
            raise ValueError(
                f"noise={noise!r} contradicts perturbation={perturbation!r}, whose noise scheme "
                f"is {perturbation.noise!r}: give the scheme to the family "
                f"({type(perturbation).__name__}(noise=...)) and leave noise out"
            )
        return perturbation
    if isinstance(perturbation, str):
        return _from_spec(perturbation, noise, warn=True)
    raise TypeError(
        "perturbation must be 'dense', 'lowrank', 'lowrank(R)' or a Perturbation, got "
        f"{type(perturbation).__name__} {perturbation!r}"
    )


def perturbation_from_state(spec: str, noise: str | None) -> Perturbation:
    """The family a saved state names (its ``"perturbation"`` and ``"noise"`` entries). Every
    spelling an earlier release saved (``"lowrank:1"``) is read without a warning: the user did
    not write it.

    Example:
        >>> perturbation_from_state("lowrank:2", "philox")
        LowRank(rank=2)
    """
    if not isinstance(spec, str):
        raise ValueError(f"perturbation must be a family's spec string, got {spec!r}")
    if noise is not None:
        check_noise(noise)
    return _from_spec(spec, noise, warn=False)


def _from_spec(spec: str, noise: str | None, *, warn: bool) -> Perturbation:
    form, rank = parse_spec(
        spec, "perturbation", FORMS, alternatives=" or a Perturbation", warn=warn
    )
    if form.name == "dense":
        return Dense() if noise is None else Dense(noise=noise)
    family = LowRank(rank=rank)
    if noise is not None and noise != family.noise:
        raise ValueError(
            f"noise={noise!r} is not available for perturbation {family.spec!r}: low-rank "
            "perturbations draw counter-based noise ('philox')"
        )
    return family
