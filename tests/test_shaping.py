import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from es_opt.shaping import centered_ranks, raw, weighted_scores, z_score

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
vectors = st.lists(finite, min_size=2, max_size=60)


@given(vectors)
def test_centered_ranks_bounded_zero_sum(values):
    r = centered_ranks(torch.tensor(values, dtype=torch.float64))
    assert r.min() >= -0.5 and r.max() <= 0.5
    assert abs(float(r.sum())) < 1e-9


@given(vectors)
@settings(max_examples=60)
def test_centered_ranks_invariant_under_monotone_transform(values):
    x = torch.tensor(values, dtype=torch.float64)
    transformed = torch.atan(x / 1000.0) * 7.0 + 3.0  # strictly increasing
    # atan may merge values that are distinct in float64; only compare where the order survives.
    if torch.unique(transformed).numel() == torch.unique(x).numel():
        assert torch.equal(centered_ranks(x), centered_ranks(transformed))


@given(vectors)
def test_centered_ranks_ties_share_average_rank(values):
    x = torch.tensor(values, dtype=torch.float64)
    r = centered_ranks(x)
    for v in torch.unique(x):
        members = r[x == v]
        assert torch.all(members == members[0])
    # average rank of a tie group = mean of the ranks it spans
    order = torch.argsort(x, stable=True)
    plain = torch.empty_like(x)
    plain[order] = torch.arange(len(x), dtype=torch.float64)
    for v in torch.unique(x):
        mask = x == v
        expected = plain[mask].mean() / (len(x) - 1) - 0.5
        assert torch.allclose(r[mask], expected.expand(int(mask.sum())))


def test_centered_ranks_extremes_and_single_value():
    assert centered_ranks(torch.tensor([3.0, 1.0, 2.0])).tolist() == [0.5, -0.5, 0.0]
    assert centered_ranks(torch.tensor([4.0])).tolist() == [0.0]
    assert centered_ranks(torch.tensor([2.0, 2.0, 2.0])).tolist() == [0.0, 0.0, 0.0]


@given(vectors)
def test_z_score_zero_mean_unit_std(values):
    x = torch.tensor(values, dtype=torch.float64)
    z = z_score(x)
    if float(x.std(correction=0)) > 1e-6 * max(1.0, float(x.abs().max())):
        assert abs(float(z.mean())) < 1e-9
        assert math.isclose(float(z.pow(2).mean()), 1.0, rel_tol=1e-9)


def test_z_score_constant_is_zero_and_raw_is_identity():
    assert z_score(torch.tensor([5.0, 5.0])).tolist() == [0.0, 0.0]
    assert raw(torch.tensor([1.5, -2.0])).tolist() == [1.5, -2.0]


def test_weighted_scores_combines_per_objective_shapes():
    F = torch.tensor([[1.0, 30.0], [2.0, 10.0], [3.0, 20.0]], dtype=torch.float64)
    s = weighted_scores(F, [1.0, 0.5])
    expected = centered_ranks(F[:, 0]) + 0.5 * centered_ranks(F[:, 1])
    assert torch.equal(s, expected)


def test_weighted_scores_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"shape \[n_evals, 2\]"):
        weighted_scores(torch.zeros(4, 3), [1.0, 1.0])
