"""CEM against a direct transcription of the cross-entropy method (the elite's sample mean and
standard deviation, computed in NumPy from the members themselves), through ESOptimizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from es_opt import ESOptimizer, Model
from es_opt.distributions import CEM
from es_opt.distributions.black_box import BlackBoxSearch
from es_opt.distributions.cem import cem_update, elite_count


class Flat(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.x = nn.Parameter(torch.linspace(-1.0, 1.0, dim, dtype=torch.float64))


@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("elite_fraction", [0.25, 0.5])
def test_centre_and_sigma_are_the_elites_mean_and_std(antithetic, elite_fraction):
    dim, n = 5, 16
    net = Flat(dim)
    es = ESOptimizer(
        Model(net),
        torch.optim.SGD(net.parameters(), lr=1.0),
        objective_fn=lambda model, samples: 0.0,
        sigma=0.5,
        n_samples=n,
        seed=2,
        distribution=CEM(elite_fraction, antithetic=antithetic),
    )
    weights = np.linspace(1.0, 3.0, dim)
    for _ in range(8):
        population = es.ask()
        X = population.stacked_parameters(range(n)).detach().numpy()
        f = (X**2 * weights).sum(axis=1)
        elite = X[np.argsort(f, kind="stable")[: elite_count(n, elite_fraction)]]
        es.tell(torch.tensor(-f))
        np.testing.assert_allclose(net.x.detach().numpy(), elite.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(es.sigma_vector.numpy(), elite.std(axis=0), rtol=1e-10)


def test_safeguards_and_refusals():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    scores, ones = torch.tensor([1.0, 0.9]), torch.ones(2, dtype=torch.float64)

    def update(**kwargs):
        return cem_update(scores, lambda rows: z[rows], ones, antithetic=False, **kwargs)[1]

    # both elites agree in every coordinate: σ' would be 0 without a floor
    with pytest.raises(ValueError, match="stdev_min"):
        update(elite_fraction=1.0)
    assert update(elite_fraction=1.0, stdev_min=0.01).tolist() == [0.01, 0.01]
    assert update(elite_fraction=1.0, stdev_max_change=0.2).tolist() == [0.8, 0.8]
    with pytest.raises(ValueError, match="elite_fraction"):
        CEM(elite_fraction=0.0)
    with pytest.raises(ValueError, match="at least 2 elite"):
        CEM(elite_fraction=0.1).check(10, 3)
    with pytest.raises(ValueError, match="even n_samples"):
        CEM(antithetic=True).check(9, 3)
    assert CEM.from_config(CEM(0.3, stdev_min=0.1).config()) == CEM(0.3, stdev_min=0.1)


def test_cem_solves_the_sphere_when_sigma0_covers_the_distance():
    search = BlackBoxSearch(CEM(), torch.full((5,), 2.0), 3.0, n_samples=40, seed=0)
    for _ in range(150):
        x = search.ask()
        search.tell((x**2).sum(dim=1))
    assert float(search.mean.norm()) < 1e-12
