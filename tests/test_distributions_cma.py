"""CMA-ES against independent references: its parameters against `cmaes` (a transcription of
Hansen's tutorial, Table 1) and every update against pycma (`cma.CMAEvolutionStrategy`, Hansen's
reference implementation) fed the same candidate solutions through `tell`, with pycma's
refinements beyond the tutorial switched off or set to the tutorial's values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from es_opt.distributions.cma import CMAES, cma_initial_state, cma_noise_map, cma_update
from es_opt.distributions.cma_parameters import (
    check_weights,
    cma_parameters,
    default_population_size,
    expected_norm,
)

cma = pytest.importorskip("cma")
cmaes = pytest.importorskip("cmaes")


def rotation(dim: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def ellipsoid(dim: int, condition: float = 1e6) -> np.ndarray:
    """Diagonal of the ellipsoid's Hessian: condition^(i/(n−1))."""
    return condition ** (np.arange(dim) / max(1, dim - 1))


@pytest.mark.parametrize(("dim", "lam"), [(2, 6), (5, 8), (10, 10), (20, 12), (40, 200)])
@pytest.mark.parametrize("active", [False, True])
def test_parameters_equal_the_tutorials_table_as_transcribed_by_cmaes(dim, lam, active):
    ours = cma_parameters(dim, lam, active=active)
    ref = cmaes.CMA(mean=np.zeros(dim), sigma=1.0, population_size=lam)
    for mine, theirs in [
        (ours.c_1, ref._c1),
        (ours.c_mu, ref._cmu),
        (ours.c_sigma, ref._c_sigma),
        (ours.d_sigma, ref._d_sigma),
        (ours.c_c, ref._cc),
        (ours.mu_eff, ref._mu_eff),
        (ours.chi_n, ref._chi_n),
    ]:
        assert mine == pytest.approx(theirs, rel=1e-13)
    weights = np.asarray(ours.weights)
    expected = ref._weights if active else np.where(ref._weights > 0, ref._weights, 0.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-13, atol=1e-16)
    assert math.fsum(weights[: ours.mu]) == pytest.approx(1.0, abs=1e-15)


def test_default_population_and_eigen_interval():
    assert [default_population_size(n) for n in (2, 10, 100, 1000)] == [6, 10, 17, 24]
    p = cma_parameters(1000, 24)
    assert p.eigen_interval == math.ceil(1 / (10 * 1000 * (p.c_1 + p.c_mu))) > 1


@pytest.fixture(autouse=True)
def tutorial_chi_n(monkeypatch):
    """pycma's step-size rule with the tutorial's χ_n ≈ √n (1 − 1/(4n) + 1/(21n²)) (pycma 4 uses
    a closer approximation of E‖N(0, I)‖)."""
    from cma.utilities.math import Mh

    monkeypatch.setattr(Mh, "chiN", staticmethod(expected_norm))


def plain_pycma(x0, sigma0, params, *, seed=1):
    """pycma reduced to the tutorial's algorithm with ``params``' constants."""
    dim = len(x0)
    es = cma.CMAEvolutionStrategy(
        list(x0),
        sigma0,
        {
            "popsize": params.population_size,
            "CMA_active": any(w < 0 for w in params.weights),
            "CMA_mirrors": 0,
            "verbose": -9,
            "seed": seed,
            "tolfun": 0,
            "tolx": 0,
            "tolfunhist": 0,
            "tolflatfitness": 10**9,
            "tolstagnation": 10**9,
            "verb_log": 0,
            "verb_disp": 0,
        },
    )
    # constants: the tutorial's (pycma 4 refines c_σ, d_σ, c_1, c_μ, h_σ and the negative weights)
    es.sp.cc = params.c_c
    es.sm.parameters = lambda *args, **kwargs: {"c1": params.c_1, "cmu": params.c_mu}
    es.sp.weights[:] = list(params.weights)
    es.adapt_sigma.initialize(es)
    es.adapt_sigma.cs = params.c_sigma
    es.adapt_sigma.damps = params.d_sigma

    def tutorial_hsig(strategy):
        strategy.adapt_sigma._update_ps(strategy)
        ps, cs, n = strategy.adapt_sigma.ps, strategy.adapt_sigma.cs, strategy.N
        norm = np.linalg.norm(ps) / math.sqrt(1 - (1 - cs) ** (2 * strategy.countiter))
        return bool(norm < (1.4 + 2 / (n + 1)) * params.chi_n)

    es.adapt_sigma.hsig = tutorial_hsig
    # C_0 = I exactly (pycma perturbs the diagonal by up to 1e-4 to separate the eigenvalues)
    es.sm.C = np.eye(dim)
    es.sm.B = np.eye(dim)
    es.sm.D = np.ones(dim)
    es._updateBDfromSM(es.sm)
    es.sm.lazy_update_gap = params.eigen_interval
    return es


def run_against_pycma(dim, lam, *, active, eigen_interval=None, generations=25, seed=0):
    params = cma_parameters(dim, lam, active=active)
    if eigen_interval is not None:
        params = CMAES(eigen_interval=eigen_interval, active=active).parameters(dim, lam)
    hessian = ellipsoid(dim, 1e4)
    R = rotation(dim, seed)

    def f(x):
        y = R @ x
        return float(np.sum(hessian * y * y))

    x0 = np.linspace(1.0, 2.0, dim)
    sigma0 = 0.3
    es = plain_pycma(x0, sigma0, params)
    state = cma_initial_state(dim, sigma0)
    mean = torch.tensor(x0, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    hsig_stalls = 0
    for _ in range(generations):
        z = torch.randn(lam, dim, generator=generator, dtype=torch.float64)
        X = mean + float(state["sigma"]) * z @ cma_noise_map(state).T
        values = [f(x) for x in X.numpy()]
        order = np.argsort(values, kind="stable")
        es.ask()  # pycma's lazy eigendecomposition happens here
        es.tell(list(X.numpy()), values, check_points=False)
        y_w, new_state = cma_update(state, z[order], params)
        mean = mean + params.c_m * state["sigma"] * y_w
        state = new_state
        hsig_stalls += int(np.linalg.norm(es.pc) == 0)
        pairs = [
            (mean.numpy(), es.mean),
            (state["sigma"].item(), es.sigma),
            (state["p_sigma"].numpy(), es.adapt_sigma.ps),
            (state["p_c"].numpy(), es.pc),
            (state["C"].numpy(), es.sm.C),
        ]
        for ours, theirs in pairs:
            scale = max(1e-300, float(np.max(np.abs(theirs))))
            worst = max(worst, float(np.max(np.abs(np.asarray(ours) - theirs))) / scale)
    return worst, state


@pytest.mark.parametrize(
    ("dim", "lam", "active", "eigen_interval"),
    [
        (2, 6, False, None),
        (5, 8, False, None),
        (10, 10, False, 1),
        (10, 10, True, None),
        (12, 24, True, 3),
        (30, 14, False, None),
    ],
)
def test_update_equals_pycma_on_the_same_candidates(dim, lam, active, eigen_interval):
    """Mean, σ, both paths and C equal pycma's to round-off over 25 generations (the relative
    error of each, against its largest entry, stays below 1e-9)."""
    worst, state = run_against_pycma(dim, lam, active=active, eigen_interval=eigen_interval)
    assert worst < 1e-9
    assert int(state["generation"]) == 25


def test_h_sigma_stall_is_exercised_and_still_matches():
    """A tiny initial σ on a linear slope drives ‖p_σ‖ above the threshold: the rank-one
    update stalls (h_σ = 0) in early generations, and pycma agrees on every one of them."""
    dim, lam = 4, 8
    params = cma_parameters(dim, lam)
    es = plain_pycma(np.zeros(dim), 1e-3, params)
    state = cma_initial_state(dim, 1e-3)
    mean = torch.zeros(dim, dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    stalls = 0
    for _ in range(20):
        z = torch.randn(lam, dim, generator=generator, dtype=torch.float64)
        X = mean + float(state["sigma"]) * z @ cma_noise_map(state).T
        values = [float(x[0]) for x in X.numpy()]
        es.ask()
        es.tell(list(X.numpy()), values, check_points=False)
        order = np.argsort(values, kind="stable")
        p_c_before = state["p_c"]
        y_w, state_next = cma_update(state, z[order], params)
        cc = params.c_c
        if torch.allclose(state_next["p_c"], (1 - cc) * p_c_before, rtol=0, atol=0):
            stalls += 1
        mean = mean + state["sigma"] * y_w
        state = state_next
        np.testing.assert_allclose(state["p_c"].numpy(), es.pc, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(state["C"].numpy(), es.sm.C, rtol=1e-9, atol=1e-14)
    assert stalls >= 3


def test_update_is_pure_and_keeps_dtype():
    params = cma_parameters(3, 6)
    state = cma_initial_state(3, 0.5)
    before = {k: v.clone() for k, v in state.items()}
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, new = cma_update(state, z, params)
    assert all(torch.equal(before[k], state[k]) for k in state)
    assert all(v.dtype in (torch.float64, torch.int64) for v in new.values())
    with pytest.raises(ValueError, match="best candidates"):
        cma_update(state, z[:2], params)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weights": [0.5, 0.3]}, ValueError, "must sum to 1"),
        ({"weights": [0.2, 0.8]}, ValueError, "non-increasing"),
        ({"weights": [1.5, -0.5]}, ValueError, "finite numbers > 0"),
        ({"weights": "0.5"}, TypeError, "sequence"),
        ({"weights": [1.0], "active": True}, ValueError, "cannot be combined"),
        ({"max_dim": 0}, ValueError, "max_dim"),
        ({"eigen_interval": 0}, ValueError, "eigen_interval"),
        ({"antithetic": 1}, TypeError, "bools"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        CMAES(**kwargs)


def test_check_refuses_small_populations_odd_pairs_and_large_dimensions():
    CMAES().check(2, 3)
    with pytest.raises(ValueError, match="at least 2 ranked candidates"):
        CMAES().check(1, 3)
    with pytest.raises(ValueError, match="at least 2 mirrored pairs"):
        CMAES(antithetic=True).check(2, 3)
    with pytest.raises(ValueError, match="even n_samples"):
        CMAES(antithetic=True).check(7, 3)
    with pytest.raises(ValueError, match="at least 3 ranked"):
        CMAES(weights=[0.5, 0.3, 0.2]).check(2, 3)
    with pytest.raises(ValueError, match="sep_cma.*low-rank"):
        CMAES().check(10, 10_001)
    CMAES(max_dim=20_000).check(10, 10_001)
    with pytest.raises(ValueError, match="sigma"):
        cma_initial_state(3, 0.0)
    assert check_weights([0.75, 0.25]) == (0.75, 0.25)
