"""Ligi against a plain transcription of its equations."""

from __future__ import annotations

import pytest
import torch

from es_opt.optim import Ligi


def _ligi_transcription(theta, grads, lr, betas, gamma, eps, weight_decay):
    beta1, beta2 = betas
    m = torch.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        bc = beta1 * (1 - beta2 ** (t - 1)) + (1 - beta1)
        c = (beta1 * m + (1 - beta1) * g) / bc
        m = beta2 * m + (1 - beta2) * g
        theta = theta * (1 - lr * weight_decay)
        theta = theta - lr * c / (gamma * c.abs() + (1 - gamma) * g.abs() + eps)
    return theta


@pytest.mark.parametrize("foreach", [False, None])
@pytest.mark.parametrize(
    "hyper",
    [
        {"lr": 1e-3, "betas": (0.9, 0.99), "gamma": 0.9, "eps": 1e-15, "weight_decay": 0.0},
        {"lr": 3e-2, "betas": (0.8, 0.95), "gamma": 0.5, "eps": 1e-8, "weight_decay": 0.1},
        {"lr": 1e-2, "betas": (0.0, 0.5), "gamma": 1.0, "eps": 1e-12, "weight_decay": 0.0},
    ],
)
def test_matches_the_equations(hyper, foreach):
    g = torch.Generator().manual_seed(0)
    shapes = [(30, 20), (20,), (70_000,)]
    params = [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]
    start = [p.detach().clone() for p in params]
    grads = [[torch.randn(s, generator=g, dtype=torch.float64) for s in shapes] for _ in range(15)]
    opt = Ligi(params, **hyper, foreach=foreach)
    for step_grads in grads:
        for p, grad in zip(params, step_grads, strict=True):
            p.grad = grad.clone()
        opt.step()
        assert all(torch.equal(p.grad, gr) for p, gr in zip(params, step_grads, strict=True))
    for k, p in enumerate(params):
        expected = _ligi_transcription(start[k], [s[k] for s in grads], **hyper)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12)


def test_first_step_is_lr_times_sign():
    p = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    opt = Ligi([p], lr=0.1)
    p.grad = torch.tensor([3.0, -0.001, 0.0, 1e4])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.9, 2.1, 3.0, 3.9]))


def test_update_is_bounded_by_lr_over_gamma():
    g = torch.Generator().manual_seed(1)
    p = torch.zeros(1000, requires_grad=True)
    opt = Ligi([p], lr=0.01, gamma=0.7)
    for _ in range(30):
        before = p.detach().clone()
        p.grad = torch.randn(1000, generator=g) * torch.rand(1000, generator=g) ** 4
        opt.step()
        assert (p.detach() - before).abs().max().item() <= 0.01 / 0.7 * (1 + 1e-5)


def test_maximize_equals_minimizing_the_negated_gradient():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(50, generator=g).requires_grad_()
    b = a.detach().clone().requires_grad_()
    up, down = Ligi([a], lr=0.01, maximize=True), Ligi([b], lr=0.01)
    for _ in range(10):
        grad = torch.randn(50, generator=g)
        a.grad, b.grad = grad.clone(), -grad
        up.step()
        down.step()
        assert torch.equal(a, b)
        assert torch.equal(a.grad, grad)


def test_steps_are_counted_per_parameter():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(5, generator=g).requires_grad_()
    b = a.detach().clone().requires_grad_()
    other = torch.zeros(3, requires_grad=True)
    both, alone = Ligi([other, a], lr=0.05), Ligi([b], lr=0.05)
    for t in range(6):
        other.grad = torch.ones(3)
        grad = torch.randn(5, generator=g)
        a.grad = grad.clone() if t % 2 else None
        both.step()
        if t % 2:
            b.grad = grad.clone()
            alone.step()
    assert torch.equal(a, b)
    assert both.state[a]["step"] == 3 and both.state[other]["step"] == 6
