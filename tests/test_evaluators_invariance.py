"""Worker-count invariance: the same seed gives bit-identical parameters after 5 steps with the
serial evaluator, the pool with 1, 2 and 3 workers, and Ray."""

from __future__ import annotations

import copy

import pytest
import torch

from es_opt import SamplingStrategy

from .test_evaluators_pool import make_es, run

STRATEGIES = [SamplingStrategy.ALL, SamplingStrategy.RANDOM]


@pytest.fixture(scope="module")
def serial_runs():
    """Parameters and merged stats after 5 serial steps, per strategy."""
    runs = {}
    for strategy in STRATEGIES:
        es = make_es(strategy=strategy)
        runs[strategy] = (run(es, 5), es.objective_fn.merged)
    return runs


def assert_identical(got, expected):
    state, merged = got
    assert state.keys() == expected[0].keys()
    for name in state:
        assert torch.equal(state[name], expected[0][name]), name
    assert merged == expected[1]  # per-evaluation stats, in evaluation order


def test_serial_runs_move_and_differ_between_strategies(serial_runs):
    """Guards the comparisons below against a run that does nothing."""
    start = make_es().model.net.state_dict()
    moved = {
        strategy: {n for n, v in serial_runs[strategy][0].items() if not torch.equal(v, start[n])}
        for strategy in STRATEGIES
    }
    assert moved[SamplingStrategy.ALL] == set(start)
    # RANDOM updates one layer a step: at least two layers, so workers need the changed tensors
    assert len({name.split(".")[0] for name in moved[SamplingStrategy.RANDOM]}) >= 2
    a, b = (serial_runs[s][0] for s in STRATEGIES)
    assert any(not torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_pool_is_bit_identical_to_serial(serial_runs, strategy, n_workers):
    with make_es("multiprocess", strategy=strategy, n_workers=n_workers) as es:
        assert_identical((run(es, 5), es.objective_fn.merged), serial_runs[strategy])


@pytest.mark.ray
def test_ray_is_bit_identical_to_serial(serial_runs):
    """One optimizer (Ray start-up is slow): 5 steps with ALL, then back to the initial weights
    and state with RANDOM for 5 more. The actors must notice the reloaded weights."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    es = make_es("ray", n_workers=2)
    initial_weights = copy.deepcopy(es.model.net.state_dict())
    initial_state = copy.deepcopy(es.state_dict())
    try:
        assert_identical((run(es, 5), es.objective_fn.merged), serial_runs[SamplingStrategy.ALL])
        # it started a private Ray with n_workers CPUs, on the loopback interface only
        assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
        assert ray.cluster_resources()["CPU"] == 2
        es.model.net.load_state_dict(initial_weights)
        es.load_state_dict(dict(initial_state, strategy=SamplingStrategy.RANDOM.value))
        es.objective_fn.offset, es.objective_fn.merged = 0.0, []
        assert_identical((run(es, 5), es.objective_fn.merged), serial_runs[SamplingStrategy.RANDOM])
    finally:
        es.close()
    assert not ray.is_initialized()  # closing the optimizer that started Ray stopped it
