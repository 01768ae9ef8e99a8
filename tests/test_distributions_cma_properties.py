"""Properties of the CMA-ES family on ellipsoids: full CMA-ES learns the inverse Hessian and is
invariant to a rotation of the search space; separable CMA-ES solves an axis-aligned ellipsoid
of condition 10⁶ but is not faster than full CMA-ES on the rotated one."""

from __future__ import annotations

import math

import pytest
import torch

from es_opt.distributions import CMAES, SepCMAES
from es_opt.distributions.black_box import BlackBoxSearch
from es_opt.distributions.cma import cma_initial_state, cma_noise_map, cma_update
from es_opt.distributions.cma_parameters import default_population_size


def rotation(dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def hessian_diagonal(dim: int, condition: float) -> torch.Tensor:
    return condition ** (torch.arange(dim, dtype=torch.float64) / (dim - 1))


def solve(distribution, f, dim, *, target=1e-8, budget=30_000, seed=0, x0=None):
    """Evaluations until the best value ≤ target (``math.inf`` if the budget runs out), and the
    search."""
    lam = default_population_size(dim)
    x0 = torch.full((dim,), 1.0, dtype=torch.float64) if x0 is None else x0
    search = BlackBoxSearch(distribution, x0, 1.0, n_samples=lam, seed=seed)
    while search.evaluations < budget:
        values = f(search.ask())
        search.tell(values)
        if float(values.min()) <= target:
            return search.evaluations, search
    return math.inf, search


def test_full_cma_learns_the_inverse_hessian_of_a_rotated_ellipsoid():
    dim = 8
    R, h = rotation(dim, 0), hessian_diagonal(dim, 1e4)
    H = R.T @ torch.diag(h) @ R

    def f(x):
        return ((x @ R.T) ** 2 * h).sum(dim=1)

    evaluations, search = solve(CMAES(), f, dim, target=1e-12)
    assert evaluations < math.inf
    C = search.state["C"]
    root = search.state["B"] @ torch.diag(search.state["D"]) @ search.state["B"].T
    eigenvalues = torch.linalg.eigvalsh(root @ H @ root)  # the spectrum of C·H
    assert float(eigenvalues.max() / eigenvalues.min()) < 10
    assert float(torch.linalg.cond(C)) > 1e3  # C did adapt: cond(H) = 1e4


def test_updates_are_rotation_invariant_on_the_same_seed():
    """The rotated run starts from B = Rᵀ (an eigenbasis of C₀ = I), so the same noise gives
    rotated members: the f-trajectory is the same and C' = Rᵀ C R, generation after generation
    (no eigendecomposition: its eigenvectors' signs are arbitrary, so afterwards the runs are
    equal in distribution only, see the next test)."""
    dim, lam = 6, 10
    R, h = rotation(dim, 1), hessian_diagonal(dim, 1e3)
    params = CMAES(eigen_interval=10**9).parameters(dim, lam)
    plain, rotated = cma_initial_state(dim, 0.5), cma_initial_state(dim, 0.5)
    rotated["B"] = R.T.clone()
    m = torch.linspace(-1.0, 1.0, dim, dtype=torch.float64)
    m_rot = R.T @ m
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        z = torch.randn(lam, dim, generator=generator, dtype=torch.float64)
        x = m + float(plain["sigma"]) * z @ cma_noise_map(plain).T
        x_rot = m_rot + float(rotated["sigma"]) * z @ cma_noise_map(rotated).T
        f = (x**2 * h).sum(dim=1)
        f_rot = ((x_rot @ R.T) ** 2 * h).sum(dim=1)
        torch.testing.assert_close(f_rot, f, rtol=1e-9, atol=0)
        order = torch.argsort(f, stable=True)
        assert torch.equal(order, torch.argsort(f_rot, stable=True))
        y_w, next_plain = cma_update(plain, z[order], params)
        y_w_rot, next_rotated = cma_update(rotated, z[order], params)
        m = m + params.c_m * plain["sigma"] * y_w
        m_rot = m_rot + params.c_m * rotated["sigma"] * y_w_rot
        plain, rotated = next_plain, next_rotated
    torch.testing.assert_close(rotated["C"], R.T @ plain["C"] @ R, rtol=1e-9, atol=1e-12)
    assert float(rotated["sigma"]) == pytest.approx(float(plain["sigma"]), rel=1e-9)


@pytest.mark.slow
def test_full_cma_is_as_fast_on_the_rotated_as_on_the_axis_aligned_ellipsoid():
    dim = 6
    h = hessian_diagonal(dim, 1e6)
    runs = {"aligned": [], "rotated": []}
    for seed in range(3):
        R = rotation(dim, 10 + seed)
        runs["aligned"].append(solve(CMAES(), lambda x: (x**2 * h).sum(1), dim, seed=seed)[0])
        runs["rotated"].append(
            solve(CMAES(), lambda x, R=R: ((x @ R.T) ** 2 * h).sum(1), dim, seed=seed)[0]
        )
    aligned, rotated = sorted(runs["aligned"])[1], sorted(runs["rotated"])[1]
    assert rotated < math.inf and 0.75 < rotated / aligned < 1.33


@pytest.mark.slow
def test_separable_cma_solves_the_aligned_ellipsoid_but_not_faster_when_rotated():
    dim = 10
    h = hessian_diagonal(dim, 1e6)
    R = rotation(dim, 3)

    def aligned(x):
        return (x**2 * h).sum(dim=1)

    def rotated(x):
        return ((x @ R.T) ** 2 * h).sum(dim=1)

    sep_aligned, _ = solve(SepCMAES(), aligned, dim)
    full_aligned, _ = solve(CMAES(), aligned, dim)
    assert sep_aligned < full_aligned  # the diagonal is all there is to learn: sep learns it faster
    full_rotated, _ = solve(CMAES(), rotated, dim)
    assert full_rotated < math.inf
    sep_rotated, _ = solve(SepCMAES(), rotated, dim, budget=2 * full_rotated)
    assert sep_rotated >= full_rotated
