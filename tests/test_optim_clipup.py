"""ClipUp against a transcription of Toklu et al. (2020), plus its speed limit and sign rules."""

from __future__ import annotations

import math

import pytest
import torch

from es_opt import ESOptimizer
from es_opt.optim import ClipUp


def _clipup_transcription(x, grads, stepsize, momentum, max_speed):
    """The paper's update on a flat list of floats (ascent on the gradient it is given):
    v <- momentum v + stepsize g / |g|;  v <- v max_speed / |v| if |v| > max_speed;  x <- x + v."""
    v = [0.0] * len(x)
    for g in grads:
        g_norm = math.sqrt(sum(gi * gi for gi in g))
        v = [momentum * vi + stepsize * gi / g_norm for vi, gi in zip(v, g, strict=True)]
        v_norm = math.sqrt(sum(vi * vi for vi in v))
        if v_norm > max_speed:
            v = [vi * max_speed / v_norm for vi in v]
        x = [xi + vi for xi, vi in zip(x, v, strict=True)]
    return x


def _flat(params):
    return torch.cat([p.detach().reshape(-1) for p in params]).tolist()


@pytest.mark.parametrize(
    ("lr", "momentum", "max_speed"),
    [(0.1, 0.9, None), (0.1, 0.9, 0.12), (0.05, 0.0, 1.0), (0.3, 0.5, 0.4)],
)
def test_matches_the_paper_with_es_sign_convention(lr, momentum, max_speed):
    """ES writes .grad = -g (g the ascent direction); ClipUp then climbs along g / |g|."""
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(),
              torch.randn(5, generator=g, dtype=torch.float64).requires_grad_()]  # fmt: skip
    start = _flat(params)
    ascent = [[torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
              for _ in range(12)]  # fmt: skip
    opt = ClipUp(params, lr=lr, momentum=momentum, max_speed=max_speed)
    for step_grads in ascent:
        for p, a in zip(params, step_grads, strict=True):
            p.grad = -a
        opt.step()
    flat_grads = [torch.cat([a.reshape(-1) for a in step]).tolist() for step in ascent]
    speed = 2 * lr if max_speed is None else max_speed
    expected = _clipup_transcription(start, flat_grads, lr, momentum, speed)
    torch.testing.assert_close(
        torch.tensor(_flat(params), dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
        rtol=1e-13,
        atol=1e-13,
    )


def test_first_step_is_lr_along_the_normalised_gradient():
    w = torch.tensor([3.0, -4.0], requires_grad=True)
    opt = ClipUp([w], lr=0.5)
    w.grad = torch.tensor([3.0, -4.0])
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([2.7, -3.6]))
    torch.testing.assert_close(opt.state[w]["velocity"], torch.tensor([-0.3, 0.4]))


def test_default_max_speed_is_twice_the_lr_and_follows_a_scheduler():
    """Constant gradient: |v| = lr (1 + mu + mu^2 + ...) until it reaches 2 lr, then stays there."""
    w = torch.zeros(3, requires_grad=True)
    opt = ClipUp([w], lr=0.1, momentum=0.9)
    speeds = []
    for _ in range(6):
        before = w.detach().clone()
        w.grad = torch.tensor([1.0, 2.0, 2.0])
        opt.step()
        speeds.append(round((w.detach() - before).norm().item(), 6))
    assert speeds == [0.1, 0.19, 0.2, 0.2, 0.2, 0.2]
    opt.param_groups[0]["lr"] = 0.05  # as an lr scheduler would: the limit becomes 0.1
    before = w.detach().clone()
    w.grad = torch.tensor([1.0, 2.0, 2.0])
    opt.step()
    assert (w.detach() - before).norm().item() == pytest.approx(0.1, rel=1e-6)


def test_step_never_exceeds_max_speed_whatever_the_gradient_scale():
    g = torch.Generator().manual_seed(1)
    params = [torch.zeros(50, requires_grad=True), torch.zeros(7, 2, requires_grad=True)]
    opt = ClipUp(params, lr=0.2, momentum=0.95, max_speed=0.25)
    for scale in (1e-8, 1.0, 1e8, 1.0, 1e-3):
        before = [p.detach().clone() for p in params]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * scale
        opt.step()
        moved = torch.cat(
            [(p.detach() - b).reshape(-1) for p, b in zip(params, before, strict=True)]
        )
        assert moved.norm().item() <= 0.25 * (1 + 1e-6)


def test_zero_gradient_adds_no_push_but_momentum_carries_on():
    w = torch.zeros(2, requires_grad=True)
    opt = ClipUp([w], lr=1.0, momentum=0.5, max_speed=10.0)
    w.grad = torch.tensor([-1.0, 0.0])
    opt.step()
    w.grad = torch.zeros(2)
    opt.step()
    assert w.detach().tolist() == [1.5, 0.0]
    assert not torch.isnan(opt.state[w]["velocity"]).any()


def test_groups_are_independent_clipups():
    g = torch.Generator().manual_seed(2)
    a, b = (
        torch.randn(6, generator=g).requires_grad_(),
        torch.randn(4, generator=g).requires_grad_(),
    )
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    both = ClipUp([{"params": [a]}, {"params": [b], "lr": 0.3, "max_speed": 0.35}], lr=0.1)
    alone = [ClipUp([a2], lr=0.1), ClipUp([b2], lr=0.3, max_speed=0.35)]
    for _ in range(8):
        ga, gb = torch.randn(6, generator=g), torch.randn(4, generator=g)
        a.grad, b.grad, a2.grad, b2.grad = ga, gb, ga.clone(), gb.clone()
        both.step()
        for o in alone:
            o.step()
        assert torch.equal(a, a2) and torch.equal(b, b2)


def test_maximize_equals_the_negated_gradient_and_leaves_grad_alone():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(9, generator=g).requires_grad_()
    b = a.detach().clone().requires_grad_()
    up, down = ClipUp([a], lr=0.1, maximize=True), ClipUp([b], lr=0.1)
    for _ in range(5):
        grad = torch.randn(9, generator=g)
        a.grad, b.grad = grad.clone(), -grad
        up.step()
        down.step()
        assert torch.equal(a, b)
        assert torch.equal(a.grad, grad)


def test_as_the_es_inner_optimizer_it_climbs_the_fitness_at_bounded_speed():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(2.0)

    def fitness(model, samples):  # maximised at every parameter = 0.5
        return -float(sum((p.detach() - 0.5).square().sum() for p in model.net.parameters()))

    es = ESOptimizer(net, ClipUp(net.parameters(), lr=0.1), fitness, sigma=0.05, n_samples=20)
    start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    previous = start
    for _ in range(12):
        es.gradient_step()
        now = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert (now - previous).norm().item() <= 0.2 * (1 + 1e-6)  # max_speed = 2 lr
        previous = now
    # 12 steps of at most 0.2 towards the optimum, at distance 1.5 * sqrt(8) = 4.24
    assert (start - 0.5).norm().item() - (previous - 0.5).norm().item() > 1.5
