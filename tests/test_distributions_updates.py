"""Each distribution's update against a loop transcription of its paper's equations.

PGPE: Sehnke et al. 2010 (symmetric sampling) as Toklu et al. 2020 implement it in pgpelib
(``compute_reinforce_update`` + the stdev clip); SNES: Wierstra et al. 2014, Algorithm 6, with the
``λ`` mirrored samples of es_opt's pairs; OpenAI-ES: the estimate es_opt has always used.
The transcriptions below loop over pairs and coordinates in plain Python floats.
"""

from __future__ import annotations

import math

import pytest
import torch

from es_opt import noise
from es_opt.distributions import PGPE, SNES, OpenAIES, nes_utilities, pgpe_step, snes_step
from es_opt.estimator import dense_rows, estimate_gradient, pair_moments
from es_opt.population import Population
from es_opt.shaping import centered_ranks

CURVATURE = [4.0, 1.0, 0.25, 9.0, 0.5]
TARGET = [0.3, -0.2, 0.1, 0.0, 0.7]


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def fitness(theta: list[float]) -> float:
    return -sum(c * (t - g) ** 2 for c, t, g in zip(CURVATURE, theta, TARGET, strict=True))


def problem(n_pairs: int = 6, seed: int = 3):
    """Centre, σ vector, the pairs' standard normal z (es_opt's seeded noise) and the fitness of
    the 2P members θ ± σ⊙z_j, all float64."""
    dim = len(CURVATURE)
    center = [0.1 * i for i in range(dim)]
    sigma = [0.05 + 0.03 * i for i in range(dim)]
    z = noise.perturbations(seed, 0, range(n_pairs), dim, dtype=torch.float64)
    f = []
    for j in range(n_pairs):
        for sign in (1.0, -1.0):
            f.append(fitness([c + sign * s * float(z[j, i]) for i, (c, s) in enumerate(
                zip(center, sigma, strict=True))]))  # fmt: skip
    return center, sigma, z, f


def pgpelib_ranks(values: list[float]) -> list[float]:
    """Centered ranks as pgpelib computes them (rank r in 0..n-1, r/(n-1) − 0.5)."""
    n = len(values)
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    for r, i in enumerate(order):
        ranks[i] = r / (n - 1) - 0.5
    return ranks


def pgpe_transcription(center, sigma, z, weights, *, lr, max_change):
    """Sehnke et al. 2010 / pgpelib: scaled noise ε = σ·z, baseline = mean weight."""
    n_pairs, dim = z.shape
    baseline = sum(weights) / len(weights)
    total_mu = [0.0] * dim
    total_sigma = [0.0] * dim
    for j in range(n_pairs):
        f_plus, f_minus = weights[2 * j], weights[2 * j + 1]
        for i in range(dim):
            eps = sigma[i] * float(z[j, i])
            total_mu[i] += eps * (f_plus - f_minus) * 0.5
            total_sigma[i] += ((f_plus + f_minus) / 2 - baseline) * (
                (eps**2 - sigma[i] ** 2) / sigma[i]
            )
    grad_mu = [t / n_pairs for t in total_mu]
    new_sigma = []
    for i in range(dim):
        s = sigma[i] + lr * total_sigma[i] / n_pairs
        allowed = abs(sigma[i]) * max_change
        new_sigma.append(min(max(s, sigma[i] - allowed), sigma[i] + allowed))
    return grad_mu, new_sigma


def nes_utility_transcription(values: list[float]) -> list[float]:
    lam = len(values)
    raw = [max(0.0, math.log(lam / 2 + 1) - math.log(k)) for k in range(1, lam + 1)]
    total = sum(raw)
    best_first = sorted(range(lam), key=lambda i: -values[i])
    u = [0.0] * lam
    for k, i in enumerate(best_first):
        u[i] = raw[k] / total - 1 / lam
    return u


def snes_transcription(center, sigma, z, f, *, eta_sigma, eta_mu=1.0):
    """Wierstra et al. 2014, Algorithm 6, over λ = 2P samples (s_{2j} = z_j, s_{2j+1} = −z_j)."""
    n_pairs, dim = z.shape
    samples = []
    for j in range(n_pairs):
        samples.append([float(z[j, i]) for i in range(dim)])
        samples.append([-float(z[j, i]) for i in range(dim)])
    u = nes_utility_transcription(f)
    grad_mu = [sum(u[k] * samples[k][i] for k in range(len(samples))) for i in range(dim)]
    grad_sigma = [
        sum(u[k] * (samples[k][i] ** 2 - 1) for k in range(len(samples))) for i in range(dim)
    ]
    new_mu = [center[i] + eta_mu * sigma[i] * grad_mu[i] for i in range(dim)]
    new_sigma = [sigma[i] * math.exp(eta_sigma / 2 * grad_sigma[i]) for i in range(dim)]
    return new_mu, new_sigma


def test_pgpe_matches_the_transcription():
    center, sigma, z, f = problem()
    ranks = pgpelib_ranks(f)
    assert torch.equal(centered_ranks(t64(f)), torch.tensor(ranks, dtype=torch.float64))
    grad_mu, new_sigma = pgpe_transcription(center, sigma, z, ranks, lr=0.1, max_change=0.2)
    sigma_t = torch.tensor(sigma, dtype=torch.float64)
    g, s = pgpe_step(t64(ranks), dense_rows(z), sigma_t, stdev_lr=0.1)
    torch.testing.assert_close(g, torch.tensor(grad_mu, dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(s, torch.tensor(new_sigma, dtype=torch.float64), rtol=1e-12, atol=0)
    assert not torch.equal(s, sigma_t)  # the problem does move σ


def test_pgpe_clip_is_active_and_matches():
    center, sigma, z, f = problem(n_pairs=4, seed=11)
    ranks = pgpelib_ranks(f)
    _, expected = pgpe_transcription(center, sigma, z, ranks, lr=50.0, max_change=0.2)
    _, s = pgpe_step(t64(ranks), dense_rows(z), torch.tensor(sigma, dtype=torch.float64),
                     stdev_lr=50.0, stdev_max_change=0.2)  # fmt: skip
    ratio = s / torch.tensor(sigma, dtype=torch.float64)
    assert torch.isclose(ratio, torch.tensor(1.2, dtype=torch.float64)).any()
    assert torch.isclose(ratio, torch.tensor(0.8, dtype=torch.float64)).any()
    torch.testing.assert_close(s, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_pgpe_bounds_are_hard():
    _, sigma, z, f = problem()
    sigma_t = torch.tensor(sigma, dtype=torch.float64)
    _, s = pgpe_step(t64(pgpelib_ranks(f)), dense_rows(z), sigma_t, stdev_lr=0.1,
                     stdev_min=0.09, stdev_max=0.1)  # fmt: skip
    assert float(s.min()) >= 0.09 and float(s.max()) <= 0.1
    assert float(s.min()) == 0.09 and float(s.max()) == 0.1


def test_snes_matches_algorithm_6():
    center, sigma, z, f = problem()
    eta = 0.3
    new_mu, new_sigma = snes_transcription(center, sigma, z, f, eta_sigma=eta)
    g, s = snes_step(t64(f), dense_rows(z), torch.tensor(sigma, dtype=torch.float64),
                     stdev_lr=eta)  # fmt: skip
    mu = torch.tensor(center, dtype=torch.float64) + 1.0 * g  # SGD with lr = η_μ = 1
    torch.testing.assert_close(mu, torch.tensor(new_mu, dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(s, torch.tensor(new_sigma, dtype=torch.float64), rtol=1e-12, atol=0)


def test_nes_utilities_match_the_paper_formula():
    values = [0.3, -1.0, 2.5, 0.0, 7.0, -3.0, 1.5, 0.2]
    expected = torch.tensor(nes_utility_transcription(values), dtype=torch.float64)
    torch.testing.assert_close(nes_utilities(t64(values)), expected, rtol=1e-14, atol=0)
    assert abs(float(expected.sum())) < 1e-14


def test_nes_utilities_average_ties():
    u = nes_utilities(torch.tensor([1.0, 5.0, 1.0, 0.0]))
    distinct = nes_utilities(torch.tensor([1.0, 5.0, 1.5, 0.0]))
    assert u[0] == u[2]
    torch.testing.assert_close(u[0], (distinct[0] + distinct[2]) / 2)
    assert u[1] == distinct[1] and u[3] == distinct[3]


def test_snes_shaped_utilities_divide_by_the_absolute_sum():
    _, sigma, z, _ = problem(n_pairs=3)
    scores = torch.tensor([0.5, -0.5, 0.1, -0.3, 0.2, 0.0], dtype=torch.float64)
    u = scores / scores.abs().sum()
    g, s = snes_step(scores, dense_rows(z), torch.tensor(sigma, dtype=torch.float64),
                     stdev_lr=0.2, utilities="shaped")  # fmt: skip
    sig = torch.tensor(sigma, dtype=torch.float64)
    samples = torch.stack([z, -z], 1).reshape(6, -1)
    torch.testing.assert_close(g, sig * (u @ samples))
    torch.testing.assert_close(s, sig * torch.exp(0.1 * (u @ (samples.square() - 1))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pair_moments_blocks_agree(dtype):
    z = noise.perturbations(0, 1, range(37), 9, dtype=dtype)
    a = torch.linspace(-1, 1, 37, dtype=torch.float64)
    b = torch.linspace(0.5, -0.2, 37, dtype=torch.float64)
    whole = pair_moments(a, b, dense_rows(z), dim=9, dtype=dtype)
    blocked = pair_moments(a, b, dense_rows(z), dim=9, dtype=dtype, block_elements=20)
    for x, y in zip(whole, blocked, strict=True):
        torch.testing.assert_close(x, y)
    torch.testing.assert_close(whole[0], a.to(dtype) @ z)
    torch.testing.assert_close(whole[1], b.to(dtype) @ (z.square() - 1))


def test_openai_es_is_the_estimator_bit_for_bit():
    pop = Population(4, 7, 0.05, 10, ("w",), (torch.Size([6]),), torch.randn(6, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(0)))  # fmt: skip
    fit = torch.tensor([[3.0], [1.0], [0.5], [2.0], [4.0], [0.0], [1.5], [1.7], [2.2], [0.1]])
    scores = centered_ranks(fit[:, 0])
    expected = estimate_gradient(scores, pop.perturbations, sigma=0.05, dim=6, dtype=torch.float64)
    step = OpenAIES().step(scores, pop, {})
    assert step.sigma is None and step.state == {}
    assert torch.equal(step.gradient, expected)


def adaptive_population(distribution, sigma, n_pairs=6, seed=3):
    """The population of :func:`problem` (same seed, so the same z), drawn from ``distribution``."""
    center = torch.tensor(problem(n_pairs, seed)[0], dtype=torch.float64)
    return Population(0, seed, sigma, 2 * n_pairs, ("w",), (torch.Size([center.numel()]),),
                      center, distribution=distribution, state={"sigma": sigma})  # fmt: skip


def test_class_steps_equal_the_pure_functions():
    _, sigma, z, f = problem()
    sig = torch.tensor(sigma, dtype=torch.float64)
    scores = centered_ranks(t64(f))
    pgpe = PGPE(stdev_lr=0.3, stdev_max_change=0.5)
    pop = adaptive_population(pgpe, sig)
    assert torch.equal(pop.perturbations(range(6)), z)
    got = pgpe.step(scores, pop, pop.state)
    want = pgpe_step(scores, dense_rows(z), sig, stdev_lr=0.3, stdev_max_change=0.5)
    assert torch.equal(got.gradient, want[0]) and torch.equal(got.sigma, want[1])
    got = SNES().step(scores, adaptive_population(SNES(), sig), {"sigma": sig})
    eta = (3 + math.log(5)) / (5 * math.sqrt(5))
    want = snes_step(scores, dense_rows(z), sig, stdev_lr=eta)
    assert torch.equal(got.gradient, want[0]) and torch.equal(got.sigma, want[1])


def test_a_scalar_sigma_is_broadcast():
    _, _, _, f = problem()
    scores = centered_ranks(t64(f))
    vector = torch.full((5,), 0.1, dtype=torch.float64)
    a = PGPE().step(scores, adaptive_population(PGPE(), vector), {"sigma": 0.1})
    b = PGPE().step(scores, adaptive_population(PGPE(), vector), {"sigma": vector})
    assert torch.equal(a.gradient, b.gradient) and torch.equal(a.sigma, b.sigma)
