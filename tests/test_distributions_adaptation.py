"""PGPE and SNES adapt σ in the expected direction on a separable quadratic with very different
curvatures: σ shrinks along the stiff axes relative to the flat ones."""

from __future__ import annotations

import pytest
import torch

from es_opt import noise
from es_opt.distributions import PGPE, SNES
from es_opt.estimator import dense_rows
from es_opt.optim import ClipUp
from es_opt.shaping import centered_ranks

STIFF, FLAT = 100.0, 0.01
CURVATURE = torch.tensor([STIFF] * 4 + [FLAT] * 4, dtype=torch.float64)


def run(distribution, *, generations: int, n_pairs: int = 16, move_center: bool, seed: int = 0):
    """A plain ask/tell loop on f(θ) = −Σ c_i θ_i² with es_opt's seeded pairs; the centre moves with
    ClipUp (the recipe of Toklu et al. 2020) or stays at the optimum."""
    dim = CURVATURE.numel()
    theta = torch.nn.Parameter(torch.full((dim,), 0.5, dtype=torch.float64) * move_center)
    optimizer = ClipUp([theta], lr=0.02)
    sigma = torch.full((dim,), 0.1, dtype=torch.float64)
    for generation in range(generations):
        z = noise.perturbations(seed, generation, range(n_pairs), dim, dtype=torch.float64)
        members = torch.stack([theta.detach() + sigma * z, theta.detach() - sigma * z], 1)
        f = -(CURVATURE * members.reshape(2 * n_pairs, dim).square()).sum(1)
        gradient, new_sigma = distribution.update(centered_ranks(f), dense_rows(z), sigma)
        if move_center:
            theta.grad = -gradient
            optimizer.step()
        sigma = new_sigma
    return theta.detach(), sigma


@pytest.mark.parametrize("distribution", [PGPE(stdev_lr=0.2), SNES()], ids=["pgpe", "snes"])
@pytest.mark.parametrize("move_center", [False, True], ids=["at_optimum", "moving"])
def test_sigma_shrinks_along_the_stiff_axes(distribution, move_center):
    _, sigma = run(distribution, generations=60, move_center=move_center)
    stiff, flat = sigma[:4], sigma[4:]
    # every stiff σ ends below its start, and below every flat one, by a wide margin
    assert float(stiff.max()) < 0.1
    assert float(stiff.max()) < float(flat.min())
    assert float(flat.mean() / stiff.mean()) > 3.0


def test_the_centre_converges_while_sigma_adapts():
    theta, sigma = run(PGPE(stdev_lr=0.2), generations=150, move_center=True)
    loss = float((CURVATURE * theta.square()).sum())
    start = float((CURVATURE * torch.full((8,), 0.5, dtype=torch.float64).square()).sum())
    assert loss < start * 1e-3


def test_sigma_stays_put_without_a_learning_rate():
    _, sigma = run(PGPE(stdev_lr=0.0), generations=5, move_center=True)
    assert torch.equal(sigma, torch.full((8,), 0.1, dtype=torch.float64))
