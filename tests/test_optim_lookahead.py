"""Lookahead wrapper: analytic trajectory, equality with RangerLite, shared groups, state."""

from __future__ import annotations

import io

import pytest
import torch

from es_opt.optim import Lookahead, RangerLite


def _save_load(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _params(shapes=((6, 4), (4,)), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_() for s in shapes]


def _clone(params):
    return [p.detach().clone().requires_grad_() for p in params]


def test_sgd_constant_gradient_trajectory():
    # k = 2, alpha = 1/2: fast goes -1, -2, pulled back to -1 (sync), then -2, -3 -> -2 (sync) ...
    x = torch.zeros(1, requires_grad=True)
    opt = Lookahead(torch.optim.SGD([x], lr=1.0), sync_period=2, alpha=0.5)
    path = []
    for _ in range(8):
        x.grad = torch.ones(1)
        opt.step()
        path.append(x.item())
    assert path == [-1.0, -1.0, -2.0, -2.0, -3.0, -3.0, -4.0, -4.0]
    assert opt.state[x]["slow_param"].item() == -4.0


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(("k", "alpha"), [(6, 0.5), (3, 0.8), (1, 1.0)])
def test_lookahead_radam_equals_rangerlite(foreach, k, alpha):
    ours = _params()
    theirs = _clone(ours)
    hyper = {"lr": 0.02, "betas": (0.95, 0.999), "eps": 1e-5, "weight_decay": 0.05}
    wrapped = Lookahead(
        torch.optim.RAdam(theirs, **hyper, decoupled_weight_decay=True, foreach=foreach),
        sync_period=k,
        alpha=alpha,
    )
    ranger = RangerLite(ours, **hyper, sync_period=k, alpha=alpha, foreach=foreach)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        for a, b in zip(ours, theirs, strict=True):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        ranger.step()
        wrapped.step()
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_shares_param_groups_with_inner_optimizer_also_after_loading():
    params = _params()
    inner = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    opt = Lookahead(inner, sync_period=3)
    assert opt.param_groups is inner.param_groups
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    sched.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.05)
    opt.load_state_dict(_save_load(opt.state_dict()))
    assert opt.param_groups is inner.param_groups
    inner.param_groups[0]["lr"] = 0.01
    assert opt.param_groups[0]["lr"] == 0.01


def test_state_dict_round_trip_in_lockstep():
    params = _params()
    opt = Lookahead(torch.optim.SGD(params, lr=0.1, momentum=0.9), sync_period=3, alpha=0.4)
    g = torch.Generator().manual_seed(2)

    def grads(*lists):
        for k in range(len(lists[0])):
            grad = torch.randn(lists[0][k].shape, generator=g)
            for ps in lists:
                ps[k].grad = grad.clone()

    for _ in range(4):
        grads(params)
        opt.step()
    saved = _save_load(opt.state_dict())
    assert set(saved) == {"state", "param_groups", "lookahead_state"}
    assert saved["lookahead_state"][0]["step"] == 4
    clones = _clone(params)
    fresh = Lookahead(torch.optim.SGD(clones, lr=0.5, momentum=0.9), sync_period=7)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["sync_period"] == 3 and fresh.param_groups[0]["lr"] == 0.1
    for _ in range(6):
        grads(params, clones)
        opt.step()
        fresh.step()
        assert all(torch.equal(a, b) for a, b in zip(params, clones, strict=True))


def test_loads_a_plain_inner_state_dict():
    params = _params()
    inner = torch.optim.Adam(params, lr=0.01)
    for p in params:
        p.grad = torch.ones_like(p)
    inner.step()
    opt = Lookahead(torch.optim.Adam(_clone(params), lr=0.5))
    opt.load_state_dict(_save_load(inner.state_dict()))
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["sync_period"] == 5
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    opt.step()
    assert opt.state[opt.param_groups[0]["params"][0]]["step"] == 1


def test_params_without_grad_keep_their_own_period():
    a, b = (torch.zeros(1, requires_grad=True) for _ in range(2))
    opt = Lookahead(torch.optim.SGD([a, b], lr=1.0), sync_period=2, alpha=0.5)
    for t in range(4):
        a.grad = torch.ones(1)
        b.grad = torch.ones(1) if t % 2 == 0 else None
        opt.step()
    # a: -1, -1 (sync), -2, -2 (sync); b updated at t = 0, 2 only: -1, then -2 -> -1 (sync)
    assert a.item() == -2.0 and b.item() == -1.0
    assert opt.state[b]["step"] == 2


def test_per_group_sync_settings_from_the_inner_groups():
    a, b = (torch.zeros(1, requires_grad=True) for _ in range(2))
    groups = [{"params": [a], "sync_period": 1, "sync_alpha": 0.25}, {"params": [b]}]
    inner = torch.optim.SGD(groups, lr=1.0)
    opt = Lookahead(inner, sync_period=2, alpha=0.5)
    for _ in range(2):
        a.grad, b.grad = torch.ones(1), torch.ones(1)
        opt.step()
    assert a.item() == -0.5 and b.item() == -1.0  # a: -0.25, -0.25 + 0.25 * (-1); b: -1, -2 -> -1


@pytest.mark.parametrize("bad", [None, "sgd", torch.nn.Linear(2, 2), RangerLite])
def test_rejects_non_optimizers(bad):
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        Lookahead(bad)


def test_closure_is_passed_to_the_inner_optimizer():
    x = torch.tensor([1.0, -1.0], requires_grad=True)
    opt = Lookahead(torch.optim.LBFGS([x], lr=0.5, max_iter=3), sync_period=1, alpha=0.5)

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(2.0)
    assert x.abs().max().item() < 1.0


def test_built_through_optimizer_init_without_touching_the_inner_groups():
    params = _params()
    inner = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.2}], lr=0.1)
    groups, first = inner.param_groups, inner.param_groups[0]
    opt = Lookahead(inner, sync_period=3, alpha=0.4)
    assert inner.param_groups is groups and groups[0] is first and len(groups) == 2
    assert [g["lr"] for g in groups] == [0.1, 0.2]
    assert all((g["sync_period"], g["sync_alpha"]) == (3, 0.4) for g in groups)
    assert opt.defaults == {"sync_period": 3, "sync_alpha": 0.4}
    assert len(opt.state) == 0 and opt.state is not inner.state
    extra = torch.zeros(2, requires_grad=True)
    opt.add_param_group({"params": [extra], "sync_period": 2})
    assert inner.param_groups[-1]["params"] == [extra] and len(inner.param_groups) == 3
    assert (
        inner.param_groups[-1]["sync_period"] == 2 and inner.param_groups[-1]["sync_alpha"] == 0.4
    )
    assert inner.param_groups[-1]["lr"] == 0.1  # the inner optimizer's defaults


def test_a_bad_inner_group_is_refused_before_anything_changes():
    params = _params()
    inner = torch.optim.SGD(
        [{"params": params[:1]}, {"params": params[1:], "sync_period": 0}], lr=0.1
    )
    groups = list(inner.param_groups)
    with pytest.raises(ValueError, match="sync_period: 0"):
        Lookahead(inner, sync_period=2)
    assert inner.param_groups == groups and "sync_alpha" not in inner.param_groups[0]
