"""nonfinite="worst" for every distribution: a NaN or ±inf member ranks below every finite one
(the run is the one where it scored worse than all others), and a generation where every member
is non-finite changes nothing and says so; nonfinite="raise" refuses it."""

from __future__ import annotations

import math

import pytest
import torch

from es_opt.distributions import make_distribution
from es_opt.distributions.black_box import BlackBoxSearch
from es_opt.fitness import check_nonfinite_policy, rank_nonfinite_last

NAMES = ["openai", "pgpe", "snes", "cma", "sep_cma", "cem"]


def run(name, spoil, generations=12, nonfinite="worst"):
    search = BlackBoxSearch(make_distribution(name), torch.linspace(-1, 1, 5), 0.3,
                            n_samples=8, seed=4, nonfinite=nonfinite)  # fmt: skip
    for g in range(generations):
        values = (search.ask() ** 2).sum(dim=1)
        if g % 3 == 1:
            values[[1, 6]] = spoil
        search.tell(values)
    return search


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_nonfinite_member_ranks_last(name, bad):
    reference = run(name, 1e300)  # worse than every finite member
    spoiled = run(name, bad)
    assert torch.equal(spoiled.mean, reference.mean)
    for key, value in reference.state.items():
        assert torch.equal(spoiled.state[key], value)


@pytest.mark.parametrize("name", NAMES)
def test_a_generation_without_a_finite_member_changes_nothing(name):
    search = BlackBoxSearch(make_distribution(name), torch.ones(4), 0.5, n_samples=6,
                            nonfinite="worst")  # fmt: skip
    search.tell((search.ask() ** 2).sum(dim=1))
    mean, state = search.mean.clone(), {k: v.clone() for k, v in search.state.items()}
    search.ask()
    with pytest.warns(RuntimeWarning, match="every fitness value is non-finite"):
        assert search.tell(torch.full((6,), math.nan)) is False
    assert torch.equal(search.mean, mean) and search.skipped == 1
    assert all(torch.equal(search.state[k], v) for k, v in state.items())


def test_raise_is_the_default_and_names_the_evaluation():
    search = BlackBoxSearch(make_distribution("cma"), torch.ones(4), 0.5, n_samples=6)
    values = (search.ask() ** 2).sum(dim=1)
    values[3] = math.nan
    with pytest.raises(ValueError, match=r"non-finite value \(nan\) for evaluation 3"):
        search.tell(values)
    assert search.generation == 0
    with pytest.raises(ValueError, match="nonfinite must be 'raise' or 'worst'"):
        check_nonfinite_policy("drop")


def test_worst_respects_each_objectives_direction():
    F = torch.tensor([[1.0, 10.0], [math.nan, 5.0], [3.0, -2.0], [2.0, math.inf]],
                     dtype=torch.float64)  # fmt: skip
    fixed, bad = rank_nonfinite_last(F, [1.0, -0.5])
    assert bad.tolist() == [False, True, False, True]
    good = fixed[~bad]
    assert bool((fixed[bad][:, 0] < good[:, 0].min()).all())  # maximised: below every finite
    assert bool((fixed[bad][:, 1] > good[:, 1].max()).all())  # minimised: above every finite
    assert bool(torch.isfinite(fixed).all())
    huge = torch.tensor([[1e308], [math.nan], [-1e308]], dtype=torch.float64)
    fixed, _ = rank_nonfinite_last(huge, [1.0])
    assert float(fixed[1, 0]) == -torch.finfo(torch.float64).max
