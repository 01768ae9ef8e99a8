"""Separable CMA-ES against `cmaes.SepCMA` (CyberAgent's implementation of Ros & Hansen 2008) fed
the same candidate solutions: the update equations agree to round-off; its covariance learning
rate against a transcription of Ros & Hansen's formula (and `cmaes`' own value)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from es_opt.distributions.cma_parameters import sep_cma_parameters
from es_opt.distributions.sep_cma import SepCMAES, sep_cma_initial_state, sep_cma_update

cmaes = pytest.importorskip("cmaes")


def ros_hansen_c_cov(n: int, mu_eff: float) -> float:
    """Ros & Hansen 2008, eq. (6): (n + 2)/3 times Hansen & Kern 2004's c_cov with μ_cov = μ_eff."""
    mu_cov = mu_eff
    full = (1 / mu_cov) * 2 / (n + math.sqrt(2)) ** 2 + (1 - 1 / mu_cov) * min(
        1, (2 * mu_cov - 1) / ((n + 2) ** 2 + mu_cov)
    )
    return (n + 2) / 3 * full


@pytest.mark.parametrize(("dim", "lam"), [(3, 7), (10, 11), (100, 17), (1000, 25)])
def test_learning_rates_are_ros_and_hansens(dim, lam):
    p = sep_cma_parameters(dim, lam)
    assert p.c_1 + p.c_mu == pytest.approx(ros_hansen_c_cov(dim, p.mu_eff), rel=1e-14)
    assert p.c_1 == pytest.approx((p.c_1 + p.c_mu) / p.mu_eff, rel=1e-14)
    # cmaes uses the same c_cov (its c_μ) where its weights equal ours (odd λ)
    assert p.c_1 + p.c_mu == pytest.approx(
        cmaes.SepCMA(mean=np.zeros(dim), sigma=1.0, population_size=lam)._cmu, rel=1e-13
    )
    assert p.c_c == 4 / (dim + 4)
    assert p.c_sigma == pytest.approx((p.mu_eff + 2) / (dim + p.mu_eff + 3), rel=1e-15)


def reference(mean, sigma, params):
    """cmaes.SepCMA with our constants (its update rule: C ← (1 + c_1 δ − c_1 − c_μ Σw) C
    + c_1 p_c² + c_μ Σ w_i y_i², which is Ros & Hansen's with c_1 = c_cov/μ_cov and
    c_μ = c_cov (1 − 1/μ_cov))."""
    ref = cmaes.SepCMA(mean=mean.copy(), sigma=sigma, population_size=params.population_size)
    ref._weights = np.asarray(params.weights[: params.mu])
    ref._mu, ref._mu_eff = params.mu, params.mu_eff
    ref._c1, ref._cmu, ref._cc = params.c_1, params.c_mu, params.c_c
    ref._c_sigma, ref._d_sigma, ref._chi_n = params.c_sigma, params.d_sigma, params.chi_n
    # cmaes counts generations from 1 in h_σ's bias correction, the paper from 0
    ref._g = -1
    return ref


@pytest.mark.parametrize(("dim", "lam", "sigma0"), [(2, 6, 0.3), (10, 10, 0.3), (40, 13, 1e-3)])
def test_update_equals_cmaes_sepcma_on_the_same_candidates(dim, lam, sigma0):
    params = sep_cma_parameters(dim, lam)
    hessian = 1e4 ** (np.arange(dim) / (dim - 1))
    x0 = np.linspace(1.0, 2.0, dim)
    ref = reference(x0, sigma0, params)
    state = sep_cma_initial_state(dim, sigma0)
    mean = torch.tensor(x0)
    weights = torch.tensor(params.weights[: params.mu], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        z = torch.randn(lam, dim, generator=generator, dtype=torch.float64)
        X = mean + float(state["sigma"]) * z * state["D"]
        values = [float(np.sum(hessian * x * x)) for x in X.numpy()]
        order = np.argsort(values, kind="stable")[: params.mu]
        ref.tell([(x, v) for x, v in zip(X.numpy(), values, strict=True)])
        best = z[order]
        y_w, new_state = sep_cma_update(state, weights @ best, weights @ best.square(), params)
        mean = mean + state["sigma"] * y_w
        state = new_state
        np.testing.assert_allclose(mean.numpy(), ref._mean, rtol=1e-12, atol=1e-15)
        assert state["sigma"].item() == pytest.approx(ref._sigma, rel=1e-12)
        np.testing.assert_allclose(state["p_sigma"].numpy(), ref._p_sigma, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(state["p_c"].numpy(), ref._pc, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(state["C"].numpy(), ref._C, rtol=1e-12)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="must sum to 1"):
        SepCMAES(weights=[0.6, 0.6])
    with pytest.raises(TypeError, match="bool"):
        SepCMAES(antithetic="yes")
    with pytest.raises(ValueError, match="even n_samples"):
        SepCMAES(antithetic=True).check(5, 10)
    with pytest.raises(ValueError, match="shape"):
        sep_cma_update(
            sep_cma_initial_state(3, 1.0), torch.zeros(2), torch.zeros(3), sep_cma_parameters(3, 6)
        )
    with pytest.raises(ValueError, match="sigma"):
        sep_cma_initial_state(3, -1.0)
