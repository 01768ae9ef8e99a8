"""Perturbation families: dense and low-rank (es_opt/perturbations/)."""

import dataclasses
import math
import re

import pytest
import torch
from torch import nn

from es_opt import noise as mt_noise
from es_opt.estimator import estimate_gradient
from es_opt.perturbations import (
    Dense,
    LowRank,
    low_rank_delta,
    low_rank_factors,
    low_rank_linear,
    low_rank_sum,
    make_perturbation,
    matrix_shape,
)
from es_opt.population import Population

SHAPES = [(5, 4), (5,), (3, 2, 2, 2), ()]


def population(family, seed, generation, shapes, ids, sigma, n_evals):
    """A float64 population of ``family`` over tensors of ``shapes`` (centre 0)."""
    shapes = tuple(torch.Size(s) for s in shapes)
    center = torch.zeros(sum(s.numel() for s in shapes), dtype=torch.float64)
    names = tuple(f"t{i}" for i in range(len(shapes)))
    return Population(generation, seed, sigma, n_evals, names, shapes, center, family=family,
                      tensor_ids=tuple(ids))  # fmt: skip


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_low_rank_member_forward_equals_materialised_weight():
    gen = _gen(0)
    x = torch.randn(7, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    bias = torch.randn(4, generator=gen, dtype=torch.float64)
    for rank in (1, 3):
        a = torch.randn(3, 4, rank, generator=gen, dtype=torch.float64)
        b = torch.randn(3, 6, rank, generator=gen, dtype=torch.float64)
        bias_noise = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        scale = torch.tensor([0.1, -0.1, 0.3], dtype=torch.float64)
        for per_member in (False, True):
            inputs = x.expand(3, 7, 6) if per_member else x
            out = low_rank_linear(inputs, w, bias, a, b, scale, bias_noise)
            for i in range(3):
                member = w + scale[i] * a[i] @ b[i].T / math.sqrt(rank)
                member_bias = bias + scale[i] * bias_noise[i]
                expected = x @ member.T + member_bias
                torch.testing.assert_close(out[i], expected, rtol=1e-12, atol=1e-12)


def test_low_rank_linear_batched_equals_one_member_at_a_time():
    gen = _gen(1)
    x = torch.randn(6, 9, 5, generator=gen)
    w, bias = torch.randn(8, 5, generator=gen), torch.randn(8, generator=gen)
    a, b = torch.randn(6, 8, 1, generator=gen), torch.randn(6, 5, 1, generator=gen)
    scale = torch.tensor([0.2, -0.2] * 3)
    batched = low_rank_linear(x, w, bias, a, b, scale)
    for i in range(6):
        one = low_rank_linear(x[i : i + 1], w, bias, a[i : i + 1], b[i : i + 1], scale[i : i + 1])
        torch.testing.assert_close(batched[i], one[0], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(batched[0], batched[1])  # the + and − members differ


def test_low_rank_sum_is_one_gemm_equal_to_the_loop():
    gen = _gen(2)
    for rank in (1, 4):
        a = torch.randn(9, 6, rank, generator=gen, dtype=torch.float64)
        b = torch.randn(9, 5, rank, generator=gen, dtype=torch.float64)
        w = torch.randn(9, generator=gen, dtype=torch.float64)
        loop = sum(w[j] * a[j] @ b[j].T for j in range(9)) / math.sqrt(rank)
        torch.testing.assert_close(low_rank_sum(w, a, b), loop, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            low_rank_delta(a, b)[3], a[3] @ b[3].T / math.sqrt(rank), rtol=1e-12, atol=1e-12
        )


def test_aggregate_low_rank_update_is_full_rank():
    gen = _gen(3)
    a = torch.randn(40, 12, 1, generator=gen, dtype=torch.float64)
    b = torch.randn(40, 10, 1, generator=gen, dtype=torch.float64)
    w = torch.randn(40, generator=gen, dtype=torch.float64)
    assert int(torch.linalg.matrix_rank(low_rank_sum(w, a, b))) == 10  # min(P r, m, n)
    assert int(torch.linalg.matrix_rank(low_rank_sum(w[:3], a[:3], b[:3]))) == 3


def test_factors_layout_and_size_check():
    noise = torch.arange(2 * 14.0).reshape(2, 14)
    a, b = low_rank_factors(noise, 4, 3, 2)
    assert a[1, 3].tolist() == [20.0, 21.0] and b[1, 0].tolist() == [22.0, 23.0]
    with pytest.raises(ValueError, match="needs 14"):
        low_rank_factors(noise[:, :13], 4, 3, 2)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 2, 2)])
def test_low_rank_noise_of_an_empty_matrix_is_empty(shape):
    family = LowRank(rank=2)
    noise = family.draw(0, 0, [0, 1], [shape], [0])
    assert family.deltas(noise, [shape])[0].shape == (2, *shape)
    assert family.combine(torch.ones(2), noise, [shape])[0].shape == shape


def test_matrix_view_of_conv_and_vectors():
    assert matrix_shape((16, 3, 5, 5)) == (16, 75)
    assert matrix_shape((10, 7)) == (10, 7)  # an Embedding's [num, dim]
    assert matrix_shape((7,)) is None and matrix_shape(()) is None
    assert LowRank(2).noise_sizes(SHAPES) == [18, 5, 2 * (3 + 8), 1]
    assert Dense().noise_sizes(SHAPES) == [20, 5, 24, 1]


@pytest.mark.parametrize("family", [Dense(), Dense(noise="philox"), LowRank(1), LowRank(3)])
def test_deltas_and_combine_agree_with_the_definition(family):
    ids = [0, 1, 2, 3]
    noise = family.draw(4, 2, [0, 1, 2], SHAPES, ids, dtype=torch.float64)
    deltas = family.deltas(noise, SHAPES)
    assert [tuple(d.shape[1:]) for d in deltas] == [tuple(s) for s in SHAPES]
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    combined = family.combine(w, noise, SHAPES)
    for delta, total in zip(deltas, combined, strict=True):
        torch.testing.assert_close(total, torch.einsum("p,p...->...", w, delta))
    flat = family.flat_deltas(noise, SHAPES)
    torch.testing.assert_close(flat[1], torch.cat([d[1].reshape(-1) for d in deltas]))
    if isinstance(family, LowRank):  # matrices are rank r, vectors dense
        assert int(torch.linalg.matrix_rank(deltas[0][0])) == family.rank
        assert torch.equal(deltas[1], noise[1])


def test_dense_mt19937_draws_the_original_flat_noise():
    family = Dense()
    noise = family.draw(5, 2, [3, 0], SHAPES, [0, 1, 2, 3], dtype=torch.float64)
    flat = mt_noise.perturbations(5, 2, [3, 0], 50, dtype=torch.float64)
    assert torch.equal(torch.cat(noise, dim=1), flat)


def test_dense_estimate_is_the_original_estimate_bit_for_bit():
    scores = torch.randn(12, generator=_gen(4), dtype=torch.float64)
    g = Dense().estimate(
        scores, population(Dense(), 5, 2, SHAPES, [0, 1, 2, 3], 0.3, 12), block_elements=100
    )
    expected = estimate_gradient(
        scores,
        lambda r: mt_noise.perturbations(5, 2, r, 50, dtype=torch.float64),
        sigma=0.3,
        dim=50,
        dtype=torch.float64,
        block_elements=100,
    )
    assert torch.equal(g, expected)


@pytest.mark.parametrize("family", [Dense(noise="philox"), LowRank(1), LowRank(2)])
def test_estimate_equals_the_explicit_sum_for_any_block_size(family):
    ids = [3, 0, 7, 1]
    scores = torch.randn(10, generator=_gen(5), dtype=torch.float64)
    noise = family.draw(1, 9, range(5), SHAPES, ids, dtype=torch.float64)
    flat = family.flat_deltas(noise, SHAPES)
    diffs = scores[0::2] - scores[1::2]
    expected = (diffs @ flat) / (10 * 0.2)
    for block in (1, 40, 10**6):
        g = family.estimate(
            scores, population(family, 1, 9, SHAPES, ids, 0.2, 10), block_elements=block
        )
        torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family", [LowRank(1), LowRank(4), Dense(noise="philox")])
def test_estimate_is_unbiased_on_a_linear_function(family):
    # f(θ) = ⟨G, θ⟩ with raw scores: E[g] = G because the entries of E are uncorrelated with unit
    # variance. With P pairs the error of each entry has standard deviation ≈ |G|·√(c/P)
    # (c = 1 for dense, ≈ 2 for rank 1): 20,000 pairs give ≈ 0.02·|G|; we allow 5 of those.
    shapes = [(4, 3), (4,)]
    gen = _gen(6)
    G = [torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen)]
    G[1] = G[1].double()
    flat_G = torch.cat([g.reshape(-1) for g in G])
    sigma, pairs = 0.1, 20_000
    noise = family.draw(0, 0, range(pairs), shapes, [0, 1], dtype=torch.float64)
    flat = family.flat_deltas(noise, shapes)  # [P, d]
    scores = torch.empty(2 * pairs, dtype=torch.float64)
    scores[0::2] = (flat * sigma) @ flat_G
    scores[1::2] = -(flat * sigma) @ flat_G
    g = family.estimate(scores, population(family, 0, 0, shapes, [0, 1], sigma, scores.numel()))
    error = float((g - flat_G).abs().max())
    assert error < 5 * 0.02 * math.sqrt(2) * float(flat_G.norm()), error
    cosine = float(g @ flat_G / (g.norm() * flat_G.norm()))
    assert cosine > 0.99


def test_make_perturbation_strings_and_errors():
    assert make_perturbation("dense") == Dense()
    assert make_perturbation("lowrank") == LowRank(1)
    assert make_perturbation("lowrank(8)") == LowRank(8)
    assert make_perturbation(LowRank(2)).spec == "lowrank(2)"
    assert make_perturbation("dense", noise="philox") == Dense(noise="philox")
    assert str(make_perturbation("lowrank(3)")) == "lowrank(3)"
    for bad in ("sparse", "lowrank(0)", "lowrank(x)", "dense(2)", "lowrank:0", "dense:2"):
        with pytest.raises(ValueError, match=f"perturbation must be .* got {re.escape(repr(bad))}"):
            make_perturbation(bad)
    with pytest.raises(TypeError, match="perturbation must be .* got int"):
        make_perturbation(3)
    with pytest.raises(ValueError, match="noise must be one of mt19937, philox, got 'table'"):
        make_perturbation("dense", noise="table")
    with pytest.raises(ValueError, match="noise='mt19937' is not available for perturbation"):
        make_perturbation("lowrank", noise="mt19937")
    with pytest.raises(ValueError, match="rank must be a positive int, got 0"):
        LowRank(rank=0)
    with pytest.raises(ValueError, match="rank must be a positive int, got True"):
        LowRank(rank=True)


def test_low_rank_conv_member_forward_equals_materialised_weight():
    conv = nn.Conv2d(3, 4, 3).double()
    family = LowRank(2)
    shapes = [tuple(conv.weight.shape)]
    noise = family.draw(0, 0, [1], shapes, [0], dtype=torch.float64)
    a, b = family.factors(noise[0], shapes[0])
    delta = family.deltas(noise, shapes)[0][0]
    matrix = (a[0] @ b[0].T / math.sqrt(2)).reshape(conv.weight.shape)
    torch.testing.assert_close(delta, matrix, rtol=1e-12, atol=1e-12)


def test_the_noise_scheme_is_part_of_the_family_and_noise_is_a_checked_alias():
    assert LowRank(2, noise="philox") == LowRank(2) and Dense("philox") == Dense(noise="philox")
    with pytest.raises(ValueError, match="noise='mt19937' is not available for LowRank"):
        LowRank(noise="mt19937")
    with pytest.raises(ValueError, match="noise must be one of mt19937, philox, got 'x'"):
        Dense(noise="x")
    assert make_perturbation(Dense("philox"), noise="philox") == Dense("philox")
    assert make_perturbation("dense", noise="philox") == Dense("philox")
    contradiction = r"noise='mt19937' contradicts perturbation=Dense\(noise='philox'\)"
    with pytest.raises(ValueError, match=contradiction):
        make_perturbation(Dense("philox"), noise="mt19937")
    with pytest.raises(ValueError, match=r"noise='mt19937' contradicts .*LowRank\(rank=3\)"):
        make_perturbation(LowRank(3), noise="mt19937")
    with pytest.raises(ValueError, match=r"noise='mt19937' is not available for .*'lowrank\(2\)'"):
        make_perturbation("lowrank(2)", noise="mt19937")


def test_families_are_frozen_dataclasses_equal_by_configuration():
    family = LowRank(2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        family.rank = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        Dense().noise = "philox"
    assert len({Dense(), Dense(), Dense("philox"), LowRank(2), LowRank(rank=2)}) == 3
    assert (repr(LowRank(2)), repr(Dense())) == ("LowRank(rank=2)", "Dense(noise='mt19937')")
    assert dataclasses.replace(family, rank=5) == LowRank(5) and family.rank == 2
    assert Dense() != LowRank() and LowRank(1) != LowRank(2)
