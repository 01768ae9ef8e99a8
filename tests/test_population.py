from dataclasses import replace

import pytest
import torch
from torch import nn

from es_opt import noise
from es_opt.distributions import CMAES, SepCMAES
from es_opt.population import Population


def make_population(dim=6, n_evals=8, dtype=torch.float64):
    center = torch.linspace(-1, 1, dim, dtype=dtype)
    return Population(
        generation=2,
        seed=5,
        sigma=0.3,
        n_evals=n_evals,
        names=("a", "b"),
        shapes=(torch.Size([2, 2]), torch.Size([dim - 4])),
        center=center,
    )


def test_members_are_antithetic_pairs_from_seeds():
    pop = make_population()
    for i in range(pop.n_evals):
        eps = noise.perturbation(5, 2, i // 2, pop.dim, dtype=torch.float64)
        sign = 1.0 if i % 2 == 0 else -1.0
        assert torch.equal(pop.parameters(i), pop.center + eps * (sign * 0.3))
    assert torch.allclose(pop.parameters(0) + pop.parameters(1), 2 * pop.center)


def test_stacked_rows_equal_single_members_in_any_order():
    pop = make_population()
    indices = [7, 0, 3, 2, 2, 5]
    stacked = pop.stacked_parameters(indices)
    for row, index in zip(stacked, indices, strict=True):
        assert torch.equal(row, pop.parameters(index))


def test_unflatten_views_and_batches():
    pop = make_population()
    parts = pop.unflatten(pop.center)
    assert torch.equal(parts["a"], pop.center[:4].reshape(2, 2))
    batch = pop.unflatten(pop.stacked_parameters([0, 1, 2]))
    assert batch["b"].shape == (3, 2)
    assert torch.equal(batch["b"][1], pop.parameters(1)[4:])


def test_unflatten_scalar_and_empty_parameters():
    shapes = (torch.Size([]), torch.Size([0, 3]), torch.Size([2]))
    pop = Population(0, 1, 0.1, 4, ("t", "e", "v"), shapes, torch.tensor([5.0, 6.0, 7.0]))
    parts = pop.unflatten(pop.center)
    assert parts["t"].shape == () and float(parts["t"]) == 5.0
    assert parts["e"].shape == (0, 3) and torch.equal(parts["v"], torch.tensor([6.0, 7.0]))
    batch = pop.unflatten(pop.stacked_parameters([0, 1, 3]))
    assert batch["t"].shape == (3,) and batch["e"].shape == (3, 0, 3)
    assert torch.equal(batch["t"][2], pop.parameters(3)[0])


def test_loaded_restores_the_center_even_when_the_block_raises():
    net = nn.Linear(2, 1, bias=False).double()
    center = net.weight.detach().reshape(-1).clone()
    pop = Population(0, 0, 0.5, 2, ("weight",), (net.weight.shape,), center)
    with pytest.raises(RuntimeError), pop.loaded(net, 1):
        assert torch.equal(net.weight.detach().reshape(-1), pop.parameters(1))
        raise RuntimeError("boom")
    assert torch.equal(net.weight.detach().reshape(-1), center)


def test_index_out_of_range_and_pickle_size():
    import pickle

    pop = make_population(dim=1000)
    with pytest.raises(IndexError, match="evaluation index 8 out of range for 8 evaluations"):
        pop.parameters(8)
    # a population travels as its center and a few integers, never as its members
    assert len(pickle.dumps(pop)) < 1000 * 8 + 2000


@pytest.mark.parametrize("mirrored", [False, True], ids=["independent", "mirrored"])
def test_a_full_covariance_member_does_not_depend_on_its_batch(mirrored):
    """Members ``θ + σ B D z`` (CMA-ES's noise map): each row of a batch equals the member built
    alone, bit for bit, whatever the batch (a worker builds its chunk, serial builds them all)."""
    from es_opt.distributions import CMAES

    dim = 60
    distribution = CMAES(antithetic=mirrored)
    state = distribution.init_state(0.3, dim, dtype=torch.float64)
    draw = torch.randn(dim, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rotation, _ = torch.linalg.qr(draw)
    scales = torch.linspace(0.1, 3.0, dim, dtype=torch.float64)
    covariance = rotation @ torch.diag(scales**2) @ rotation.T
    state = {**state, "B": rotation, "D": scales, "C": covariance}
    center = torch.randn(dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    pop = Population(3, 11, 0.3, 12, ("w",), (torch.Size([dim]),), center,
                     distribution=distribution, state=state)  # fmt: skip
    whole = pop.stacked_parameters(range(12))
    for index in range(12):
        assert torch.equal(whole[index], pop.parameters(index)), index
    assert torch.equal(pop.stacked_parameters([5, 2, 9]), whole[[5, 2, 9]])
    z = pop.perturbations([pop.draw_index(4)])[0]
    expected = center + pop.sign(4) * 0.3 * (rotation @ (scales * z))
    torch.testing.assert_close(whole[4], expected, rtol=1e-12, atol=1e-12)


class CountingCMAES(CMAES):
    """CMA-ES that counts how often its noise map is computed."""

    calls = 0

    def noise_map(self, state):
        self.calls += 1
        return super().noise_map(state)


class CountingSepCMAES(SepCMAES):
    calls = 0

    def noise_map(self, state):
        self.calls += 1
        return super().noise_map(state)


@pytest.mark.parametrize("counting", [CountingCMAES, CountingSepCMAES], ids=["cma", "sep_cma"])
@pytest.mark.parametrize("mirrored", [False, True], ids=["independent", "mirrored"])
def test_the_noise_map_is_computed_once_per_population(counting, mirrored):
    """CMA-ES's ``A = B·diag(D)`` is ``d²`` work and memory: a population computes it once,
    whatever asks for it (choosing the path, the directions, member after member), and pickles
    without it; the members keep their bits."""
    import pickle

    dim, n_evals = 40, 8
    distribution = counting(antithetic=mirrored)
    state = distribution.init_state(0.3, dim, dtype=torch.float64)
    state = {**state, "D": torch.linspace(0.5, 2.0, dim, dtype=torch.float64)}
    center = torch.randn(dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    pop = Population(2, 7, 0.3, n_evals, ("w",), (torch.Size([dim]),), center,
                     distribution=distribution, state=state)  # fmt: skip

    whole = pop.stacked_parameters(range(n_evals))
    assert distribution.calls == 1
    members = [pop.parameters(i) for i in range(n_evals)]
    assert torch.equal(pop.stacked_parameters([5, 2]), whole[[5, 2]])
    assert distribution.calls == 1
    assert all(torch.equal(row, member) for row, member in zip(whole, members, strict=True))
    z = pop.perturbations([pop.draw_index(3)])[0]
    y = state["B"] @ (state["D"] * z) if counting is CountingCMAES else state["D"] * z
    torch.testing.assert_close(whole[3], center + pop.sign(3) * 0.3 * y, rtol=1e-12, atol=1e-12)

    # pickled without the map: the bytes of the same population before it computed one
    assert pickle.dumps(pop) == pickle.dumps(replace(pop))
    copy = pickle.loads(pickle.dumps(pop))
    assert torch.equal(copy.stacked_parameters(range(n_evals)), whole)
    assert copy.distribution.calls == 2  # the copy computes its own, once
