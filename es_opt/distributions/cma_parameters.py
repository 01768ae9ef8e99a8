"""The strategy parameters of the CMA-ES family, as pure functions of the dimension ``n`` and the
number of ranked candidates ``λ``.

Full CMA-ES follows Table 1 of Hansen's tutorial (arXiv:1604.00772), separable CMA-ES Ros &
Hansen 2008 ("A simple modification in CMA-ES achieving linear time and space complexity",
PPSN X, §2). With the raw weights ``w'_i = ln((λ + 1)/2) − ln i`` (``i = 1 … λ``) and
``μ = ⌊λ/2⌋``::

    w_i   = w'_i / Σ_{j≤μ} w'_j                 (i ≤ μ: positive, summing to 1)
    μ_eff = (Σ_{i≤μ} w_i)² / Σ_{i≤μ} w_i² = 1 / Σ_{i≤μ} w_i²
    c_m   = 1
    c_σ   = (μ_eff + 2) / (n + μ_eff + 5)
    d_σ   = 1 + 2 max(0, √((μ_eff − 1)/(n + 1)) − 1) + c_σ
    c_c   = (4 + μ_eff/n) / (n + 4 + 2 μ_eff/n)
    c_1   = α_cov / ((n + 1.3)² + μ_eff),  α_cov = 2
    c_μ   = min(1 − c_1, α_cov (μ_eff − 2 + 1/μ_eff) / ((n + 2)² + α_cov μ_eff / 2))
    χ_n   = E‖N(0, I)‖ ≈ √n (1 − 1/(4n) + 1/(21 n²))

The weights ``i > μ`` are 0 (the plain algorithm) or, for active CMA-ES, negative::

    w_i = min(1 + c_1/c_μ, 1 + 2 μ⁻_eff/(μ_eff + 2), (1 − c_1 − c_μ)/(n c_μ)) · w'_i / Σ_{j>μ} |w'_j|

The eigendecomposition of ``C`` is amortised: redone once at least ``1 / (10 n (c_1 + c_μ))``
generations have passed since the last one, i.e. every ``max(1, ⌈1 / (10 n (c_1 + c_μ))⌉)``
generations (the tutorial's §B.2 suggests this gap rounded down; pycma waits for the real-valued
gap, as here), which keeps its O(n³) cost per generation at O(n³)·10n(c_1 + c_μ) = O(n²).

Separable CMA-ES keeps a diagonal ``C`` and learns it ``(n + 2)/3`` times faster (Ros & Hansen
2008, eq. 6), with the covariance learning rate of Hansen & Kern 2004 (``μ_cov = μ_eff``)::

    c_cov = (n + 2)/3 · [ 1/μ_cov · 2/(n + √2)² + (1 − 1/μ_cov) min(1, (2μ_cov − 1)/((n + 2)² + μ_cov)) ]
    c_1   = c_cov / μ_cov,   c_μ = c_cov (1 − 1/μ_cov)
    c_σ   = (μ_eff + 2)/(n + μ_eff + 3),   c_c = 4/(n + 4),   d_σ as above
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .._validation import check_int

__all__ = [
    "CMAParameters",
    "cma_parameters",
    "sep_cma_parameters",
    "default_population_size",
    "expected_norm",
    "raw_weights",
    "check_weights",
    "MIN_POPULATION",
]

MIN_POPULATION = 2
"""The fewest ranked candidates a CMA-ES update takes (``μ = ⌊λ/2⌋ ≥ 1``)."""


@dataclass(frozen=True)
class CMAParameters:
    """The constants of one CMA-ES configuration (see the module docstring for the formulas).

    Attributes:
        dim: ``n``.
        population_size: ``λ``, the number of ranked candidates the weights cover.
        weights: ``w_1 … w_λ`` (best first): ``μ`` positive ones summing to 1, then zeros or
            negative (active) ones.
        mu: ``μ``, the number of positive weights.
        mu_eff: the variance-effective selection mass ``1/Σ_{i≤μ} w_i²``.
        c_m, c_sigma, d_sigma, c_c, c_1, c_mu: learning rates and damping.
        chi_n: ``E‖N(0, I_n)‖``.
        eigen_interval: generations between two eigendecompositions of ``C`` (1 when ``C``
            is diagonal).
    """

    dim: int
    population_size: int
    weights: tuple[float, ...]
    mu: int
    mu_eff: float
    c_m: float
    c_sigma: float
    d_sigma: float
    c_c: float
    c_1: float
    c_mu: float
    chi_n: float
    eigen_interval: int

    @property
    def weight_sum(self) -> float:
        """``Σ_j w_j`` over all weights (1 for the plain algorithm; less with active weights)."""
        return math.fsum(self.weights)


def default_population_size(dim: int) -> int:
    """``λ = 4 + ⌊3 ln n⌋`` (Hansen's tutorial, Table 1).

    Example:
        >>> [default_population_size(n) for n in (2, 10, 100, 10_000)]
        [6, 10, 17, 31]
    """
    check_int("dim", dim, low=1)
    return 4 + math.floor(3 * math.log(dim))


def expected_norm(dim: int) -> float:
    """``χ_n ≈ E‖N(0, I_n)‖ = √n (1 − 1/(4n) + 1/(21n²))``.

    Example:
        >>> round(expected_norm(10), 4)
        3.0847
    """
    return math.sqrt(dim) * (1.0 - 1.0 / (4.0 * dim) + 1.0 / (21.0 * dim * dim))


def raw_weights(population_size: int) -> list[float]:
    """``w'_i = ln((λ + 1)/2) − ln i``, ``i = 1 … λ`` (positive for ``i ≤ μ = ⌊λ/2⌋``, about
    zero or negative after).

    Example:
        >>> [round(w, 3) for w in raw_weights(4)]
        [0.916, 0.223, -0.182, -0.47]
    """
    half = math.log((population_size + 1) / 2)
    return [half - math.log(i) for i in range(1, population_size + 1)]


def check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """User recombination weights: a non-empty, non-increasing sequence of finite numbers > 0
    summing to 1 (to 1e-9), as plain floats.

    Example:
        >>> check_weights([0.5, 0.3])
        Traceback (most recent call last):
        ...
        ValueError: weights must sum to 1, got [0.5, 0.3] (sum 0.8)
    """
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or not weights:
        raise TypeError(f"weights must be a non-empty sequence of floats, got {weights!r}")
    values = []
    for index, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise ValueError(f"weights must hold finite numbers > 0, got {w!r} at index {index}")
        values.append(float(w))
    if any(b > a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"weights must be non-increasing (best first), got {values}")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"weights must sum to 1, got {values} (sum {total:.6g})")
    return tuple(values)


def _check_sizes(dim: int, population_size: int) -> None:
    check_int("dim", dim, low=1)
    check_int("population_size", population_size, low=MIN_POPULATION)


def _positive(raw: Sequence[float], mu: int) -> tuple[list[float], float]:
    total = math.fsum(raw[:mu])
    weights = [w / total for w in raw[:mu]]
    return weights, 1.0 / math.fsum(w * w for w in weights)


def cma_parameters(
    dim: int,
    population_size: int,
    *,
    active: bool = False,
    weights: Sequence[float] | None = None,
) -> CMAParameters:
    """Full CMA-ES's default parameters for ``n = dim`` and ``λ = population_size`` (Hansen's
    tutorial, Table 1; formulas in the module docstring).

    Args:
        dim: the search space's dimension ``n``.
        population_size: ``λ``, the number of ranked candidates (≥ 2).
        active: negative weights for the worse half (active CMA-ES), else zeros.
        weights: the ``μ`` positive weights (:func:`check_weights`) instead of the default
            ones; ``μ ≤ λ``. Not combined with ``active``.

    Example:
        >>> p = cma_parameters(10, 10)
        >>> p.mu, round(p.mu_eff, 4), round(p.c_sigma, 4), round(p.c_1, 5), round(p.c_mu, 5)
        (5, 3.1673, 0.2844, 0.01528, 0.02015)
        >>> p.eigen_interval
        1
    """
    _check_sizes(dim, population_size)
    raw = raw_weights(population_size)
    if weights is None:
        mu = population_size // 2
        positive, mu_eff = _positive(raw, mu)
    else:
        positive = list(check_weights(weights))
        mu = len(positive)
        if mu > population_size:
            raise ValueError(
                f"weights has {mu} entries but only {population_size} candidates are ranked"
            )
        if active:
            raise ValueError("weights and active=True cannot be combined: give one of them")
        mu_eff = 1.0 / math.fsum(w * w for w in positive)
    n = float(dim)
    alpha_cov = 2.0
    c_1 = alpha_cov / ((n + 1.3) ** 2 + mu_eff)
    c_mu = min(
        1.0 - c_1,
        alpha_cov * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + alpha_cov * mu_eff / 2),
    )
    c_sigma = (mu_eff + 2) / (n + mu_eff + 5)
    d_sigma = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma
    c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    rest = (
        _rest_weights(raw, mu, mu_eff, c_1, c_mu, n) if active else [0.0] * (population_size - mu)
    )
    return CMAParameters(
        dim=dim,
        population_size=population_size,
        weights=tuple(positive + rest),
        mu=mu,
        mu_eff=mu_eff,
        c_m=1.0,
        c_sigma=c_sigma,
        d_sigma=d_sigma,
        c_c=c_c,
        c_1=c_1,
        c_mu=c_mu,
        chi_n=expected_norm(dim),
        eigen_interval=max(1, math.ceil(1.0 / (10.0 * n * (c_1 + c_mu)) - 1e-12)),
    )


def _rest_weights(
    raw: Sequence[float], mu: int, mu_eff: float, c_1: float, c_mu: float, n: float
) -> list[float]:
    """The active (negative) weights of the candidates ranked after the ``μ`` best (module
    docstring), all 0 when there are none or ``c_μ = 0``."""
    negative = list(raw[mu:])
    if not negative or c_mu <= 0:
        return [0.0] * len(negative)
    neg_sum = math.fsum(abs(w) for w in negative)
    mu_eff_minus = math.fsum(negative) ** 2 / math.fsum(w * w for w in negative)
    alpha = min(
        1 + c_1 / c_mu,
        1 + 2 * mu_eff_minus / (mu_eff + 2),
        (1 - c_1 - c_mu) / (n * c_mu),
    )
    return [alpha * w / neg_sum for w in negative]


def sep_cma_parameters(
    dim: int,
    population_size: int,
    *,
    active: bool = False,
    weights: Sequence[float] | None = None,
) -> CMAParameters:
    """Separable CMA-ES's parameters (Ros & Hansen 2008; formulas in the module docstring);
    ``active`` gives the candidates after the ``μ`` best the negative weights of active CMA-ES,
    with separable CMA-ES's own ``c_1``, ``c_μ`` (as pycma's ``CMA_diagonal`` with its default
    ``CMA_active``).

    Example:
        >>> p = sep_cma_parameters(100, 17)
        >>> round(p.c_1 + p.c_mu, 5), round(p.c_sigma, 4), round(p.c_c, 4)
        (0.02543, 0.0656, 0.0385)
    """
    _check_sizes(dim, population_size)
    if weights is None:
        mu = population_size // 2
        positive, mu_eff = _positive(raw_weights(population_size), mu)
    else:
        positive = list(check_weights(weights))
        mu = len(positive)
        if mu > population_size:
            raise ValueError(
                f"weights has {mu} entries but only {population_size} candidates are ranked"
            )
        if active:
            raise ValueError("weights and active=True cannot be combined: give one of them")
        mu_eff = 1.0 / math.fsum(w * w for w in positive)
    n = float(dim)
    mu_cov = mu_eff
    c_cov = (1 / mu_cov) * 2 / (n + math.sqrt(2)) ** 2 + (1 - 1 / mu_cov) * min(
        1.0, (2 * mu_cov - 1) / ((n + 2) ** 2 + mu_cov)
    )
    c_cov = min(1.0, (n + 2) / 3 * c_cov)
    c_sigma = (mu_eff + 2) / (n + mu_eff + 3)
    c_1, c_mu = c_cov / mu_cov, c_cov * (1 - 1 / mu_cov)
    raw = raw_weights(population_size)
    rest = (
        _rest_weights(raw, mu, mu_eff, c_1, c_mu, n) if active else [0.0] * (population_size - mu)
    )
    return CMAParameters(
        dim=dim,
        population_size=population_size,
        weights=tuple(positive + rest),
        mu=mu,
        mu_eff=mu_eff,
        c_m=1.0,
        c_sigma=c_sigma,
        d_sigma=1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma,
        c_c=4 / (n + 4),
        c_1=c_1,
        c_mu=c_mu,
        chi_n=expected_norm(dim),
        eigen_interval=1,
    )
