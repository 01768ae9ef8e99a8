"""``n_samples``: even for mirrored pairs, any size ≥ 2 the distribution accepts without them
(CMA-ES's default λ = 4 + ⌊3 ln d⌋ is often odd), on every backend, through the setter and on
resume."""

import pytest
import torch

from es_opt import ESOptimizer
from es_opt.distributions import CMAES, SepCMAES
from es_opt.evaluators._chunks import ChunkQueue

from .conftest import Quadratic, assert_same_params, make_mlp


def make(n_samples=7, distribution=None, **kw):
    net = make_mlp()
    es = ESOptimizer(
        net,
        torch.optim.SGD(net.parameters(), lr=1.0),
        Quadratic(),
        sigma=0.3,
        n_samples=n_samples,
        seed=5,
        distribution=distribution or CMAES(),
        **kw,
    )
    return net, es


@pytest.mark.parametrize("n_evals", [1, 2, 7, 9, 31])
@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_chunks_cover_an_odd_generation_once_in_order(n_evals, n_workers):
    queue, seen = ChunkQueue(n_evals, n_workers), []
    while (chunk := queue.next()) is not None:
        assert chunk.indices[0] % 2 == 0  # a chunk starts on a pair
        seen += chunk.indices
    assert seen == list(range(n_evals))


@pytest.mark.parametrize("distribution", [CMAES, SepCMAES])
@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_an_odd_population_is_bit_identical_serial_and_pool(distribution, n_workers):
    net_s, serial = make(distribution=distribution())
    net_p, pool = make(distribution=distribution(), backend="multiprocess", n_workers=n_workers)
    with pool:
        for _ in range(3):
            a, b = serial.gradient_step(), pool.gradient_step()
            assert a.n_evals == b.n_evals == 7
            assert torch.equal(a.fitness, b.fitness)
            assert a.fitness[:, 0].unique().numel() == 7  # seven distinct members, none dropped
        assert_same_params(net_s, net_p)


def test_odd_sizes_need_a_distribution_without_mirroring():
    with pytest.raises(ValueError, match="n_samples must be an even int >= 2, got 7"):
        make(distribution="openai")
    with pytest.raises(ValueError, match="n_samples must be an even int >= 2, got 7"):
        make(distribution=CMAES(antithetic=True))


def test_the_setter_checks_against_the_distribution_and_changes_nothing_when_refused():
    _, es = make()
    es.n_samples = 9
    assert es.n_samples == 9 and es.gradient_step().n_evals == 9
    with pytest.raises(ValueError, match="n_samples must be an int >= 2, got 1"):
        es.n_samples = 1
    _, openai = make(n_samples=8, distribution="openai")
    with pytest.raises(ValueError, match="n_samples must be an even int >= 2, got 9"):
        openai.n_samples = 9
    assert es.n_samples == 9 and openai.n_samples == 8


def test_an_odd_population_resumes_exactly_and_is_refused_by_a_mirrored_run():
    net_a, a = make()
    for _ in range(3):
        a.gradient_step()
    saved_net = {k: v.clone() for k, v in net_a.state_dict().items()}
    saved = a.state_dict()
    for _ in range(2):
        a.gradient_step()
    net_b, b = make(n_samples=11)
    net_b.load_state_dict(saved_net)
    b.load_state_dict(saved)
    assert b.n_samples == 7
    for _ in range(2):
        b.gradient_step()
    assert_same_params(net_a, net_b)
    # a state that claims mirrored pairs with an odd size is refused before anything changes
    bad = {**saved, "distribution": {**saved["distribution"], "antithetic": True}}
    with pytest.raises(ValueError, match="n_samples must be an even int >= 2, got 7"):
        b.load_state_dict(bad)
    assert b.generation == 5 and not b.distribution.antithetic
