"""CMA-ES, separable CMA-ES and CEM through ESOptimizer's ask/tell: the centre's trajectory equals
pycma's on the same samples (independent members, and mirrored pairs with pairwise selection);
serial, process pool (1, 2, 3 workers) and Ray runs are bit-identical; a run resumes exactly;
bad hyperparameters raise before anything exists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from es_opt import ESOptimizer, Model
from es_opt.distributions import CEM, CMAES, SepCMAES
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint

from .conftest import trainable_state
from .test_distributions_cma import ellipsoid, plain_pycma, rotation, tutorial_chi_n  # noqa: F401
from .test_evaluators_pool import make_es, run

cma = pytest.importorskip("cma")

NAMES = ["cma", "sep_cma", "cem"]


class Flat(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.x = nn.Parameter(torch.linspace(1.0, 2.0, dim, dtype=torch.float64))


def cma_es(distribution, dim=6, n_samples=10, sigma=0.3, seed=1):
    net = Flat(dim)
    es = ESOptimizer(
        Model(net),
        torch.optim.SGD(net.parameters(), lr=1.0),
        objective_fn=lambda model, samples: 0.0,
        sigma=sigma,
        n_samples=n_samples,
        seed=seed,
        distribution=distribution,
    )
    return es, net


@pytest.mark.parametrize("antithetic", [False, True])
def test_centre_follows_pycma_on_the_same_samples(antithetic):
    """ESOptimizer + SGD(lr=1) is CMA-ES: its centre equals pycma's mean after each of 25
    generations (pycma gets the same members; with mirrored pairs, the pair winners, which is
    pairwise selection with a population of one per pair)."""
    dim, n_samples = 6, 12
    distribution = CMAES(antithetic=antithetic)
    es, net = cma_es(distribution, dim, n_samples)
    params = distribution.parameters(dim, n_samples)
    reference = plain_pycma(net.x.detach().numpy().copy(), 0.3, params)
    hessian, R = ellipsoid(dim, 1e3), rotation(dim, 1)
    for _ in range(25):
        population = es.ask()
        X = population.stacked_parameters(range(n_samples)).detach()
        f = ((X @ torch.tensor(R.T)) ** 2 * torch.tensor(hessian)).sum(dim=1)
        if antithetic:
            winners = torch.where(f[0::2] <= f[1::2], 0, 1) + torch.arange(0, n_samples, 2)
            told, values = X[winners], f[winners]
        else:
            told, values = X, f
        reference.ask()
        reference.tell(list(told.numpy()), values.tolist(), check_points=False)
        es.tell(-f)
        # active weights (the default): pycma divides a negative weight by (‖C^{-1/2} y‖ + 1e-9)²,
        # so the runs agree to about 1e-9, not to the last bit
        np.testing.assert_allclose(net.x.detach().numpy(), reference.mean, rtol=1e-9, atol=1e-12)
        state = es.state.distribution_state
        assert float(state["sigma"]) == pytest.approx(reference.sigma, rel=1e-8)
        C, C_ref = state["C"].numpy(), reference.sm.C
        assert np.abs(C - C_ref).max() < 1e-8 * np.abs(C_ref).max()


def test_members_are_drawn_from_the_state():
    es, _ = cma_es(CMAES(), dim=4, n_samples=6)
    for _ in range(3):
        population = es.ask()
        es.tell(-population.stacked_parameters(range(6)).square().sum(dim=1))
    population, state = es.ask(), es.state.distribution_state
    A = state["B"] * state["D"]
    for i in range(6):
        expected = population.center + float(state["sigma"]) * (A @ population.perturbation(i))
        torch.testing.assert_close(population.parameters(i), expected, rtol=1e-13, atol=1e-15)


# -- invariance and resume ------------------------------------------------------------------
@pytest.fixture(scope="module", params=NAMES)
def serial(request):
    es = make_es(distribution=request.param)
    return request.param, run(es, 4), dict(es.state.distribution_state or {}), es.sigma_vector


@pytest.mark.slow
@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_pool_is_bit_identical_to_serial(serial, n_workers):
    name, expected, state, sigma_vector = serial
    with make_es("multiprocess", distribution=name, n_workers=n_workers) as es:
        got = run(es, 4)
        assert all(torch.equal(got[n], expected[n]) for n in got)
        for key, value in state.items():
            assert torch.equal(es.state.distribution_state[key], value)
        if sigma_vector is not None:
            assert torch.equal(es.sigma_vector, sigma_vector)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_is_bit_identical_to_serial(serial):
    pytest.importorskip("ray")
    name, expected, _, _ = serial
    with make_es("ray", distribution=name, n_workers=2) as es:
        got = run(es, 4)
        assert all(torch.equal(got[n], expected[n]) for n in got)


@pytest.mark.parametrize("name", NAMES)
def test_resume_is_bit_exact(name, tmp_path):
    expected = run(make_es(distribution=name), 6)
    first = make_es(distribution=name)
    run(first, 3)
    save_checkpoint(tmp_path / "run.pt", first)
    second = make_es(distribution="openai")
    load_checkpoint(tmp_path / "run.pt", second)
    assert second.distribution == first.distribution
    got = run(second, 3, first=3)
    assert all(torch.equal(got[n], expected[n]) for n in got)
    saved = first.state_dict()
    assert set(saved["distribution_state"]) == set(first.state.distribution_state)


# -- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("distribution", "n_samples", "match"),
    [
        (CMAES(max_dim=5), 10, r"dense 6 × 6 covariance.*sep_cma.*low-rank"),
        (CMAES(antithetic=True), 2, r"at least 2 mirrored pairs"),
        (CMAES(weights=[0.4, 0.3, 0.2, 0.1]), 2, r"at least 4 ranked candidates"),
        (SepCMAES(weights=[0.5, 0.3, 0.2]), 2, r"at least 3 ranked candidates"),
        (CEM(elite_fraction=0.1), 10, r"at least 2 elite members"),
    ],
)
def test_bad_hyperparameters_raise_at_construction(distribution, n_samples, match):
    with pytest.raises(ValueError, match=match):
        cma_es(distribution, n_samples=n_samples)


def test_bad_sigma_and_weights_raise_before_anything_exists():
    with pytest.raises(ValueError, match="sigma"):
        cma_es("cma", sigma=0.0)
    with pytest.raises(ValueError, match="must sum to 1"):
        CMAES(weights=[0.6, 0.6])


def test_a_failed_tell_leaves_the_state_unchanged():
    es, net = cma_es("cma")
    population = es.ask()
    es.tell(-population.stacked_parameters(range(10)).square().sum(dim=1))
    before = {k: v.clone() for k, v in es.state.distribution_state.items()}
    centre = net.x.detach().clone()
    es.ask()
    with pytest.raises(ValueError, match="non-finite"):
        es.tell(torch.tensor([float("nan")] + [0.0] * 9))
    assert torch.equal(net.x.detach(), centre)
    assert all(torch.equal(before[k], es.state.distribution_state[k]) for k in before)
    assert trainable_state(net)["x"].dtype == torch.float64
