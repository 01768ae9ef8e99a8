"""Members' noise: one independent stream per tensor, antithetic pairs, reproducible."""

from __future__ import annotations

import torch
from torch import nn

from es_opt.text import member_deltas, population_noise, tensor_seed


def twin_layers() -> dict[str, torch.Tensor]:
    net = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8))
    return dict(net.named_parameters())


def test_same_shaped_layers_get_independent_noise():
    params = twin_layers()
    for rank in (None, 1, 4):
        noise = population_noise(params, seed=0, generation=0, indices=[0], sigma=1.0, rank=rank)
        deltas = [noise[f"{i}.weight"].delta(0).flatten() for i in range(3)]
        biases = [noise[f"{i}.bias"].delta(0) for i in range(3)]
        for i in range(3):
            for j in range(i + 1, 3):
                assert not torch.equal(deltas[i], deltas[j])
                assert not torch.equal(biases[i], biases[j])
                # independent, not merely shifted: the correlation of two 64-element draws
                assert abs(float(torch.corrcoef(torch.stack([deltas[i], deltas[j]]))[0, 1])) < 0.5
    assert len({tensor_seed(0, 0, 0, t) for t in range(1000)}) == 1000


def test_pairs_are_antithetic_and_draws_reproducible():
    params = twin_layers()
    noise = population_noise(params, seed=3, generation=2, indices=[4, 5, 6], sigma=0.1, rank=2)
    again = population_noise(params, seed=3, generation=2, indices=[6], sigma=0.1, rank=2)
    w = noise["1.weight"]
    torch.testing.assert_close(w.delta(0), -w.delta(1), rtol=0, atol=0)
    assert torch.equal(w.delta(2), again["1.weight"].delta(0))  # not shifted by other members
    other = population_noise(params, seed=3, generation=3, indices=[4], sigma=0.1, rank=2)
    assert not torch.equal(w.delta(0), other["1.weight"].delta(0))
    # rank-r noise E = A Bᵀ/√r has unit variance per element, like dense noise
    big = population_noise(
        {"w": torch.zeros(200, 300)}, seed=0, generation=0, indices=[0], sigma=1.0, rank=4
    )
    assert abs(float(big["w"].delta(0).var()) - 1.0) < 0.05


def test_in_place_deltas_are_the_batched_members():
    params = twin_layers()
    for rank in (None, 2):
        noise = population_noise(params, seed=1, generation=0, indices=[3], sigma=0.2, rank=rank)
        deltas = member_deltas(params, seed=1, generation=0, index=3, sigma=0.2, rank=rank)
        for name in params:
            torch.testing.assert_close(
                deltas[name](), noise[name].delta(0).reshape(params[name].shape)
            )
