"""Search distributions: how an ES step moves the centre and σ.

=================  =====================  =================================================
name               σ                      reference
=================  =====================  =================================================
``"openai"``       scalar, optional       Salimans et al. 2017 (the default; ARS with
                   schedule               ``shaping="top_pairs(k)"``, Mania et al. 2018)
``"pgpe"``         per parameter          Sehnke et al. 2010; Toklu et al. 2020 (pgpelib)
``"snes"``         per parameter          Wierstra et al. 2014, Algorithm 6
``"cma"``          scalar, full ``C``     Hansen's tutorial (arXiv:1604.00772)
``"sep_cma"``      scalar, diagonal ``C`` Ros & Hansen 2008
``"cem"``          per parameter          cross-entropy method (de Boer et al. 2005)
=================  =====================  =================================================

Every distribution samples es_opt's antithetic pairs ``θ ± σ ⊙ z_j`` and hands the centre's
ascent direction to the inner torch optimizer; see :mod:`es_opt.distributions.base`.

Example:
    >>> make_distribution("pgpe")
    PGPE(stdev_lr=0.1, stdev_max_change=0.2, stdev_min=None, stdev_max=None)
"""

from __future__ import annotations

from typing import Any

from .base import DistributionStep, SearchDistribution, check_sigma_vector, clip_sigma
from .cem import CEM
from .cma import CMAES
from .openai import OpenAIES, openai_es_gradient
from .pgpe import PGPE, pgpe_step
from .schedules import (
    ConstantSigma,
    ExponentialDecay,
    FunctionSchedule,
    SigmaSchedule,
    make_schedule,
)
from .sep_cma import SepCMAES
from .snes import SNES, nes_utilities, snes_step

__all__ = [
    "CEM",
    "CMAES",
    "DISTRIBUTIONS",
    "ConstantSigma",
    "DistributionStep",
    "ExponentialDecay",
    "FunctionSchedule",
    "OpenAIES",
    "PGPE",
    "SNES",
    "SearchDistribution",
    "SepCMAES",
    "SigmaSchedule",
    "check_sigma_vector",
    "clip_sigma",
    "distribution_from_config",
    "make_distribution",
    "make_schedule",
    "nes_utilities",
    "openai_es_gradient",
    "pgpe_step",
    "snes_step",
]

DISTRIBUTIONS: dict[str, type[SearchDistribution]] = {
    OpenAIES.name: OpenAIES,
    PGPE.name: PGPE,
    SNES.name: SNES,
    CMAES.name: CMAES,
    SepCMAES.name: SepCMAES,
    CEM.name: CEM,
}


def make_distribution(distribution: Any) -> SearchDistribution:
    """A :class:`SearchDistribution` from a name (``"openai"``, ``"pgpe"``, ``"snes"``,
    ``"cma"``, ``"sep_cma"``, ``"cem"``, with default hyperparameters) or an instance (returned
    as is).

    Example:
        >>> make_distribution("xnes")
        Traceback (most recent call last):
        ...
        ValueError: distribution must be one of 'openai', 'pgpe', 'snes', 'cma', 'sep_cma', 'cem' or a SearchDistribution, got 'xnes'
    """  # noqa: E501
    if isinstance(distribution, SearchDistribution):
        return distribution
    if isinstance(distribution, str):
        if distribution in DISTRIBUTIONS:
            return DISTRIBUTIONS[distribution]()
        names = ", ".join(repr(n) for n in DISTRIBUTIONS)
        raise ValueError(
            f"distribution must be one of {names} or a SearchDistribution, got {distribution!r}"
        )
    if isinstance(distribution, type) and issubclass(distribution, SearchDistribution):
        raise TypeError(
            f"distribution must be a SearchDistribution instance or a name, got the class "
            f"{distribution.__name__}: use {distribution.__name__}() or {distribution.name!r}"
        )
    raise TypeError(
        "distribution must be a name of DISTRIBUTIONS or a SearchDistribution, got "
        f"{type(distribution).__name__} {distribution!r}"
    )


def distribution_from_config(
    config: dict[str, Any], current: SearchDistribution | None = None
) -> SearchDistribution:
    """The distribution a :meth:`SearchDistribution.config` describes (``current`` resolves what a
    state dict holds by name only, such as a schedule function).

    Example:
        >>> distribution_from_config(SNES(stdev_lr=0.2).config())
        SNES(stdev_lr=0.2, utilities='nes', stdev_max_change=None, stdev_min=None, stdev_max=None)
    """
    if not isinstance(config, dict) or config.get("name") not in DISTRIBUTIONS:
        names = ", ".join(repr(n) for n in DISTRIBUTIONS)
        raise ValueError(
            f"a distribution's state must be a dict named one of {names}, got {config!r}"
        )
    return DISTRIBUTIONS[config["name"]].from_config(config, current)
