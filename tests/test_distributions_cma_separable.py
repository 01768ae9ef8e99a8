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


def active_sep_reference(n, lam):
    """Active separable CMA-ES's constants transcribed from the formulas (tutorial Table 1's
    negative weights with Ros & Hansen's c_1, c_μ), independently of cma_parameters."""
    raw = np.log((lam + 1) / 2) - np.log(np.arange(1, lam + 1))
    mu = lam // 2
    w_pos = raw[:mu] / raw[:mu].sum()
    mu_eff = 1 / np.sum(w_pos**2)
    c_cov = min(1.0, ros_hansen_c_cov(n, mu_eff))
    c1, cmu = c_cov / mu_eff, c_cov * (1 - 1 / mu_eff)
    neg = raw[mu:]
    mu_eff_minus = neg.sum() ** 2 / np.sum(neg**2)
    alpha = min(1 + c1 / cmu, 1 + 2 * mu_eff_minus / (mu_eff + 2), (1 - c1 - cmu) / (n * cmu))
    weights = np.concatenate([w_pos, alpha * neg / np.abs(neg).sum()])
    cs = (mu_eff + 2) / (n + mu_eff + 3)
    ds = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + cs
    chi = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    return weights, mu, mu_eff, c1, cmu, cs, ds, 4 / (n + 4), chi


@pytest.mark.parametrize(("dim", "lam"), [(3, 8), (10, 10), (40, 15)])
def test_active_update_equals_a_transcription_of_the_equations(dim, lam):
    """SepCMAES() (active by default) on an ill-conditioned ellipsoid through BlackBoxSearch,
    against a NumPy transcription fed the same noise: negative weights ``w°_i = w_i n/‖z_i‖²``
    in the update of the diagonal C only; mean, σ, paths and C agree to round-off over 25
    generations."""
    from es_opt.distributions.black_box import BlackBoxSearch

    w, mu, mu_eff, c1, cmu, cs, ds, cc, chi = active_sep_reference(dim, lam)
    assert (w[mu:] <= 0).all() and (w[mu:] < 0).sum() >= lam // 2 - 1
    h = 1e3 ** (np.arange(dim) / (dim - 1))
    search = BlackBoxSearch(SepCMAES(), torch.ones(dim), 0.5, n_samples=lam, seed=4)
    m, sigma = np.ones(dim), 0.5
    p_s, p_c, C = np.zeros(dim), np.zeros(dim), np.ones(dim)
    for g in range(1, 26):
        z = search.population().perturbations(range(lam)).numpy()
        x = search.ask().numpy()
        np.testing.assert_allclose(x, m + sigma * np.sqrt(C) * z, rtol=1e-12, atol=1e-14)
        values = (h * x * x).sum(axis=1)
        search.tell(torch.tensor(values))
        zs = z[np.argsort(values, kind="stable")]
        z_w = w[:mu] @ zs[:mu]
        y_w = np.sqrt(C) * z_w
        m = m + sigma * y_w
        p_s = (1 - cs) * p_s + math.sqrt(cs * (2 - cs) * mu_eff) * z_w
        norm = np.linalg.norm(p_s)
        hs = float(norm / math.sqrt(1 - (1 - cs) ** (2 * g)) < (1.4 + 2 / (dim + 1)) * chi)
        p_c = (1 - cc) * p_c + hs * math.sqrt(cc * (2 - cc) * mu_eff) * y_w
        w_circ = np.where(w < 0, w * dim / (zs**2).sum(axis=1), w)
        decay = 1 + c1 * (1 - hs) * cc * (2 - cc) - c1 - cmu * w.sum()
        C = decay * C + c1 * p_c**2 + cmu * C * (w_circ @ zs**2)
        sigma = sigma * math.exp(cs / ds * (norm / chi - 1))
        np.testing.assert_allclose(search.mean.numpy(), m, rtol=1e-11, atol=1e-14)
        assert float(search.state["sigma"]) == pytest.approx(sigma, rel=1e-11)
        np.testing.assert_allclose(search.state["p_c"].numpy(), p_c, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(search.state["C"].numpy(), C, rtol=1e-11)
    assert C.max() / C.min() > 3  # the diagonal has adapted (the case is exercised)


def test_active_is_the_default_and_older_configs_load_as_the_plain_update():
    assert SepCMAES().active and not SepCMAES(weights=[0.5, 0.3, 0.2]).active
    assert SepCMAES.from_config({"name": "sep_cma", "antithetic": False, "weights": None}) == (
        SepCMAES(active=False)
    )
    with pytest.raises(ValueError, match="weights and active=True cannot be combined"):
        SepCMAES(active=True, weights=[0.5, 0.5])
    with pytest.raises(TypeError, match="antithetic and active must be bools"):
        SepCMAES(active="yes")
