import dataclasses
import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from es_opt.estimator import estimate_gradient
from es_opt.shaping import (
    TopPairs,
    centered_ranks,
    centered_ranks_ordinal,
    parse_shaping,
    raw,
    weighted_scores,
    z_score,
)

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


# -- TopPairs (ARS top directions) ---------------------------------------------------------------
def _ars_update(rewards: torch.Tensor, deltas: torch.Tensor, k: int, alpha: float) -> torch.Tensor:
    """Mania et al. (2018), Algorithm 2, written out with a loop: the reference."""
    plus, minus = rewards[0::2].tolist(), rewards[1::2].tolist()
    order = sorted(range(len(plus)), key=lambda j: (-max(plus[j], minus[j]), j))[:k]
    kept = [plus[j] for j in order] + [minus[j] for j in order]
    mean = sum(kept) / len(kept)
    sigma_r = math.sqrt(sum((r - mean) ** 2 for r in kept) / len(kept))
    step = torch.zeros(deltas.shape[1], dtype=torch.float64)
    for j in order:
        step += (plus[j] - minus[j]) * deltas[j]
    return alpha / (k * sigma_r) * step


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_top_pairs_sgd_step_equals_the_ars_update(k):
    gen = torch.Generator().manual_seed(k)
    n_pairs, dim, sigma, alpha = 8, 5, 0.03, 0.02
    rewards = torch.randn(2 * n_pairs, generator=gen, dtype=torch.float64) * 100 + 40
    deltas = torch.randn(n_pairs, dim, generator=gen, dtype=torch.float64)
    scores = TopPairs(k)(rewards)
    g = estimate_gradient(
        scores, lambda r: deltas[r.start : r.stop], sigma=sigma, dim=dim, dtype=torch.float64
    )
    expected = _ars_update(rewards, deltas, min(k, n_pairs), alpha)
    torch.testing.assert_close(2 * sigma * alpha * g, expected, rtol=1e-12, atol=1e-15)


def test_top_pairs_keeps_the_best_pairs_and_is_affine_invariant_in_differences():
    f = torch.tensor([1.0, 3.0, 10.0, 6.0, -5.0, 9.0, 0.0, 0.0], dtype=torch.float64)
    s = TopPairs(2)(f)
    assert s[[0, 1, 6, 7]].tolist() == [0.0] * 4  # pairs 0 and 3 dropped (best 3 and 0)
    assert (s[[2, 3, 4, 5]] != 0).all()
    t = TopPairs(2)(f * 7.0 - 100.0)
    torch.testing.assert_close(t[0::2] - t[1::2], s[0::2] - s[1::2], rtol=1e-12, atol=1e-12)


def test_top_pairs_ties_keep_the_lower_pair_and_constant_fitness_gives_zero():
    s = TopPairs(1)(torch.tensor([5.0, 1.0, 5.0, 2.0, 5.0, 0.0]))
    assert s[0] != 0 and s[2:].abs().sum() == 0
    assert TopPairs(2)(torch.full((6,), 3.0)).abs().sum() == 0


@pytest.mark.parametrize("k", [0, -1, 2.0, True, "3"])
def test_top_pairs_rejects_bad_k(k):
    with pytest.raises(ValueError, match=f"positive int k .*got {k!r}"):
        TopPairs(k)


def test_top_pairs_rejects_an_odd_number_of_values():
    with pytest.raises(ValueError, match="even number of values\\), got 3"):
        TopPairs(1)(torch.tensor([1.0, 2.0, 3.0]))


@given(vectors)
def test_ordinal_ranks_break_ties_by_position_and_agree_with_average_ranks_elsewhere(values):
    x = torch.tensor(values, dtype=torch.float64)
    r = centered_ranks_ordinal(x)
    n = len(values)
    # OpenAI's compute_centered_ranks, transcribed: ranks[x.argsort()] = arange(n), scaled; a
    # stable sort, so a tie ranks the earlier value lower
    ranks = [0] * n
    for rank, i in enumerate(sorted(range(n), key=lambda i: values[i])):
        ranks[i] = rank
    assert r.tolist() == [k / (n - 1) - 0.5 for k in ranks]
    # each tie group spans the same ranks as under average ranks: the same mean, the same sum
    average = centered_ranks(x)
    for v in torch.unique(x):
        mask = x == v
        assert torch.allclose(r[mask].mean(), average[mask][0])
    if torch.unique(x).numel() == n:
        assert torch.equal(r, average)


def test_ordinal_ranks_move_the_centre_on_a_tied_pair():
    # one antithetic pair that ties: average ranks cancel it, ordinal ranks favour its minus side
    fitness = torch.tensor([1.0, 1.0, 0.0, 2.0])
    assert centered_ranks(fitness)[:2].tolist() == [0.0, 0.0]
    assert centered_ranks_ordinal(fitness).tolist() == [1 / 3 - 0.5, 2 / 3 - 0.5, -0.5, 0.5]
    assert parse_shaping("centered_ranks_ordinal") is centered_ranks_ordinal


def test_parse_shaping_names():
    assert parse_shaping("top_pairs(4)").k == 4
    assert parse_shaping(" top_pairs( 12 )").k == 12
    assert parse_shaping("centered_ranks") is centered_ranks
    for bad in ("top_pairs(0)", "top_pairs()", "top_pairs(-2)", "softmax", "top_pairs(", "raw(1)"):
        with pytest.raises(
            ValueError, match=f"shaping must be one of .* got {re.escape(repr(bad))}"
        ):
            parse_shaping(bad)


def test_top_pairs_is_a_frozen_dataclass_named_by_its_spec():
    shape = TopPairs(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shape.k = 4
    assert shape == TopPairs(k=3) and hash(shape) == hash(TopPairs(3)) and shape != TopPairs(4)
    assert (repr(shape), shape.spec, shape.__name__) == (
        "TopPairs(k=3)",
        "top_pairs(3)",
        "top_pairs(3)",
    )
    assert TopPairs.__name__ == "TopPairs"
