import math

import torch
from torch import nn

from es_opt import ESOptimizer, Model
from es_opt.estimator import estimate_gradient, pair_differences

from .conftest import LinearObjective


def _estimate(w: torch.Tensor, n_samples: int, shaping: str, seed: int = 0) -> torch.Tensor:
    net = nn.Linear(w.numel(), 1, bias=False).double()
    with torch.no_grad():
        net.weight.zero_()
    es = ESOptimizer(
        Model(net),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
        objective_fn=LinearObjective(w),
        sigma=0.1,
        n_samples=n_samples,
        seed=seed,
        shaping=shaping,
    )
    es.gradient_step()
    return -net.weight.grad.reshape(-1)


def test_raw_estimate_converges_to_w_as_one_over_sqrt_n():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(10, generator=gen, dtype=torch.float64)
    errors = {}
    for n in (100, 400, 1600):
        errs = [float((_estimate(w, n, "raw", seed) - w).norm()) for seed in range(6)]
        errors[n] = sum(errs) / len(errs)
    # quadrupling n should halve the error (1/sqrt(n)); allow generous noise
    for small, big in [(100, 400), (400, 1600)]:
        ratio = errors[small] / errors[big]
        assert 1.4 < ratio < 2.9, (errors, ratio)
    assert errors[1600] < 0.35 * float(w.norm())


def test_centered_rank_estimate_is_aligned_with_w():
    w = torch.randn(10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = _estimate(w, 2000, "centered_ranks")
    cosine = float(g @ w / (g.norm() * w.norm()))
    assert cosine > 0.98


def test_estimate_gradient_matches_explicit_sum_and_divides_by_evaluations():
    gen = torch.Generator().manual_seed(2)
    E = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    scores = torch.randn(10, generator=gen, dtype=torch.float64)
    sigma = 0.3
    expected = sum((scores[2 * j] - scores[2 * j + 1]) * E[j] for j in range(5)) / (10 * sigma)
    for block in (1, 3, 10**6):  # blocking must not change the result beyond round-off
        g = estimate_gradient(
            scores,
            lambda r: E[r.start : r.stop],
            sigma=sigma,
            dim=7,
            dtype=torch.float64,
            block_elements=block * 7,
        )
        assert torch.allclose(g, expected, rtol=1e-12, atol=1e-12)


def test_pair_differences_rejects_odd_length():
    assert pair_differences(torch.tensor([1.0, 4.0])).tolist() == [-3.0]
    try:
        pair_differences(torch.zeros(3))
    except ValueError as exc:
        assert "even length" in str(exc)
    else:
        raise AssertionError("odd length accepted")


def test_estimate_for_linear_objective_is_exact_in_expectation_sign():
    # f = w·θ with raw shaping: each pair contributes (w·ε)ε, whose dot with w is ≥ 0
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g = _estimate(w, 2, "raw")
    assert float(g @ w) >= 0
    assert math.isfinite(float(g.norm()))
