"""Worker-count invariance for every perturbation family: the same seed gives bit-identical
parameters after 3 steps with the serial evaluator, the pool with 1, 2 and 3 workers, and Ray,
for objectives evaluated one member at a time and stacked (the low-rank shared-base path)."""

from __future__ import annotations

import pytest
import torch

from es_opt.perturbations import Dense, LowRank

from .conftest import trainable_state
from .test_perturbations_optimizer import make_es

CASES = [
    (LowRank(1), True),
    (LowRank(2), False),
    (Dense(noise="philox"), True),
]
IDS = ["lowrank1-stacked", "lowrank2-one-at-a-time", "dense-philox-stacked"]


def run(es, steps=3):
    for _ in range(steps):
        es.gradient_step()
    return trainable_state(es.model.net)


@pytest.fixture(scope="module")
def serial_runs():
    return {
        case_id: run(make_es(f, vectorize=v)) for case_id, (f, v) in zip(IDS, CASES, strict=True)
    }


def assert_identical(got, expected):
    assert got.keys() == expected.keys()
    for name in got:
        assert torch.equal(got[name], expected[name]), name


def test_the_families_move_the_net_differently(serial_runs):
    start = trainable_state(make_es(Dense()).model.net)
    for state in serial_runs.values():
        assert all(not torch.equal(state[n], start[n]) for n in start)
    a, b = serial_runs["lowrank1-stacked"], serial_runs["dense-philox-stacked"]
    assert any(not torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("n_workers", [1, 2, 3])
@pytest.mark.parametrize(("family", "vectorize"), CASES, ids=IDS)
def test_pool_is_bit_identical_to_serial(serial_runs, family, vectorize, n_workers):
    case_id = IDS[CASES.index((family, vectorize))]
    with make_es(family, vectorize=vectorize, backend="multiprocess", n_workers=n_workers) as es:
        assert_identical(run(es), serial_runs[case_id])


@pytest.mark.ray
def test_ray_is_bit_identical_to_serial(serial_runs):
    pytest.importorskip("ray")
    for case_id, (family, vectorize) in zip(IDS, CASES, strict=True):
        if case_id == "lowrank2-one-at-a-time":
            continue  # one Ray start per case is slow; the pool covers this case
        with make_es(family, vectorize=vectorize, backend="ray", n_workers=2) as es:
            assert_identical(run(es), serial_runs[case_id])
