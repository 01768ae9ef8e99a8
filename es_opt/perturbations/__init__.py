"""Perturbation families (dense, low-rank) and counter-based noise.

- :class:`Dense`: every entry gets its own normal number (Salimans et al. 2017).
- :class:`LowRank`: EGGROLL's ``A Bᵀ / √r`` for every matrix (Sarkar et al. 2025).
- :func:`counter_normals`: Philox4x32-10 normals for any ``(seed, generation, pair, tensor)``.

:func:`make_perturbation` turns the string forms (``"dense"``, ``"lowrank"``, ``"lowrank:4"``)
into a family.
"""

from __future__ import annotations

from .base import NOISE_SCHEMES, Perturbation, matrix_shape
from .counter_noise import counter_normals, philox4x32
from .dense import Dense
from .low_rank import LowRank, low_rank_delta, low_rank_factors, low_rank_linear, low_rank_sum

__all__ = [
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
    "philox4x32",
]


def make_perturbation(perturbation: str | Perturbation = "dense", noise: str | None = None):
    """A family from its string form or an instance, with the noise scheme ``noise``
    (``None``: the family's default, ``"mt19937"`` for dense and ``"philox"`` for low-rank).

    Accepted strings: ``"dense"``, ``"lowrank"`` (rank 1) and ``"lowrank:R"``.

    Example:
        >>> make_perturbation("lowrank:4")
        LowRank(rank=4)
        >>> make_perturbation("dense", noise="philox")
        Dense(noise='philox')
    """
    if noise is not None and noise not in NOISE_SCHEMES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_SCHEMES)}, got {noise!r}")
    if isinstance(perturbation, Perturbation):
        family = perturbation
    elif isinstance(perturbation, str):
        family = _parse(perturbation)
    else:
        raise TypeError(
            "perturbation must be 'dense', 'lowrank', 'lowrank:R' or a Perturbation, got "
            f"{type(perturbation).__name__}"
        )
    if noise is None or noise == family.noise:
        return family
    if isinstance(family, Dense):
        return Dense(noise=noise)
    raise ValueError(
        f"noise={noise!r} is not available for perturbation {family.spec!r}: low-rank "
        "perturbations use counter-based noise ('philox')"
    )


def _parse(text: str) -> Perturbation:
    name, _, arg = text.strip().lower().partition(":")
    if name == "dense" and not arg:
        return Dense()
    if name in ("lowrank", "low_rank", "low-rank"):
        if not arg:
            return LowRank()
        try:
            rank = int(arg)
        except ValueError:
            rank = None
        if rank is not None and rank >= 1:
            return LowRank(rank=rank)
    raise ValueError(
        f"perturbation must be 'dense', 'lowrank' or 'lowrank:R' with R a positive int, got "
        f"{text!r}"
    )
