"""Table-driven property tests shared by RangerLite, Lookahead, Ligi and ClipUp.

Modelled on PyTorch's optimizer test suite: one entry per optimizer with the inputs to test and
the inputs that must be rejected, then properties checked over the table.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from es_opt.optim import ClipUp, Ligi, Lookahead, RangerLite


def _lookahead_adam(params, lr=1e-2, **kwargs):
    return Lookahead(torch.optim.Adam(params, lr=lr), **kwargs)


@dataclass
class OptimizerInfo:
    name: str
    build: Callable[..., torch.optim.Optimizer]
    inputs: list[dict[str, Any]]
    error_inputs: list[tuple[dict[str, Any], type[Exception], str]]
    supports_foreach: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


OPTIMIZERS = [
    OptimizerInfo(
        "RangerLite",
        RangerLite,
        inputs=[
            {"lr": 1e-2},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": False},
            {"lr": 1e-2, "lookahead_steps": 2, "lookahead_alpha": 1},  # the rangerlite names
            {"lr": 3e-2, "sync_period": 3, "alpha": 0.3},
            {"lr": 5e-2, "grad_clip_norm": 0.5, "grad_clip_value": 0.3},
            {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-8},
        ],
        error_inputs=[
            ({"lr": -1e-3}, ValueError, r"lr.*-0\.001"),
            ({"betas": (1.0, 0.999)}, ValueError, r"index 0.*betas.*1\.0"),
            ({"betas": (0.9, -0.1)}, ValueError, r"index 1.*betas.*-0\.1"),
            ({"eps": -1.0}, ValueError, r"eps.*-1\.0"),
            ({"weight_decay": -0.1}, ValueError, r"weight_decay.*-0\.1"),
            ({"lookahead_steps": 0}, ValueError, r"lookahead_steps.*0"),
            ({"lookahead_steps": 2.5}, ValueError, r"lookahead_steps.*2\.5"),
            ({"lookahead_alpha": 0.0}, ValueError, r"lookahead_alpha.*0\.0"),
            ({"lookahead_alpha": 1.5}, ValueError, r"lookahead_alpha.*1\.5"),
            ({"sync_period": 0}, ValueError, r"sync_period.*0"),
            ({"alpha": 1.5}, ValueError, r"alpha.*1\.5"),
            (
                {"sync_period": 3, "lookahead_steps": 4},
                ValueError,
                r"lookahead_steps.*4.*sync_period.*3",
            ),
            ({"lr": True}, ValueError, r"learning rate.*True"),
            ({"grad_clip_norm": 0.0}, ValueError, r"grad_clip_norm.*0\.0"),
            ({"grad_clip_value": -1.0}, ValueError, r"grad_clip_value.*-1\.0"),
        ],
    ),
    OptimizerInfo(
        "Ligi",
        Ligi,
        inputs=[
            {"lr": 1e-2},
            {"lr": 1e-2, "weight_decay": 0.1},
            {"lr": 1e-2, "gamma": 0.3},
            {"lr": 1e-2, "gamma": 1.0, "betas": (0.5, 0.9)},
        ],
        error_inputs=[
            ({"lr": -1.0}, ValueError, r"lr.*-1\.0"),
            ({"betas": (0.9, 1.0)}, ValueError, r"index 1.*betas.*1\.0"),
            ({"gamma": 1.5}, ValueError, r"gamma.*1\.5"),
            ({"gamma": -0.5}, ValueError, r"gamma.*-0\.5"),
            ({"eps": -1e-3}, ValueError, r"eps.*-0\.001"),
            ({"weight_decay": -1.0}, ValueError, r"weight_decay.*-1\.0"),
        ],
    ),
    OptimizerInfo(
        "ClipUp",
        ClipUp,
        inputs=[
            {"lr": 1e-2},
            {"lr": 5e-2, "momentum": 0.0},
            {"lr": 2e-2, "momentum": 0.5, "max_speed": 0.015},  # the clip binds
            {"lr": 1e-2, "max_speed": 1.0},  # never binds
        ],
        error_inputs=[
            ({"lr": -1.0}, ValueError, r"learning rate.*-1\.0"),
            ({"momentum": 1.0}, ValueError, r"momentum.*1\.0.*\[0, 1\)"),
            ({"momentum": -0.1}, ValueError, r"momentum.*-0\.1"),
            ({"max_speed": 0.0}, ValueError, r"max_speed.*0\.0"),
            ({"max_speed": "fast"}, ValueError, r"max_speed.*'fast'"),
        ],
        supports_foreach=False,
    ),
    OptimizerInfo(
        "Lookahead",
        _lookahead_adam,
        inputs=[{"lr": 1e-2}, {"lr": 1e-2, "sync_period": 1, "alpha": 0.8}],
        error_inputs=[
            ({"sync_period": 0}, ValueError, r"sync_period.*0"),
            ({"alpha": 0.0}, ValueError, r"alpha.*0\.0"),
            ({"alpha": 2}, ValueError, r"alpha.*2"),
        ],
        supports_foreach=False,
    ),
]

CASES = [(info, kw) for info in OPTIMIZERS for kw in info.inputs]
IDS = [f"{info.name}-{i}" for info in OPTIMIZERS for i in range(len(info.inputs))]
BY_NAME = pytest.mark.parametrize("info", OPTIMIZERS, ids=[i.name for i in OPTIMIZERS])


def _quadratic_params(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(5, 3, generator=g, dtype=dtype).requires_grad_(),
        torch.randn(3, generator=g, dtype=dtype).requires_grad_(),
    ]


def _loss(params):
    return sum((p**2).sum() for p in params)


def _train(opt, params, steps, sign=1.0):
    for _ in range(steps):
        opt.zero_grad()
        (sign * _loss(params)).backward()
        opt.step()


@pytest.mark.parametrize(("info", "kwargs"), CASES, ids=IDS)
def test_descends_on_convex_problem(info, kwargs):
    params = _quadratic_params()
    before = _loss(params).item()
    _train(info.build(params, **kwargs), params, 60)
    assert _loss(params).item() < 0.9 * before


@pytest.mark.parametrize(("info", "kwargs"), CASES, ids=IDS)
def test_descends_with_non_contiguous_params(info, kwargs):
    base = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    param = base.t().clone().requires_grad_()  # non-contiguous layout
    assert not param.is_contiguous()
    before = _loss([param]).item()
    _train(info.build([param], **kwargs), [param], 60)
    assert _loss([param]).item() < 0.9 * before


@BY_NAME
def test_maximize_ascends(info):
    if info.name == "Lookahead":
        params = _quadratic_params()
        opt = Lookahead(torch.optim.Adam(params, lr=1e-2, maximize=True))
    else:
        params = _quadratic_params()
        opt = info.build(params, lr=1e-2, maximize=True)
    before = _loss(params).item()
    _train(opt, params, 30, sign=-1.0)  # maximize -loss == minimize loss
    assert _loss(params).item() < 0.9 * before


@BY_NAME
def test_group_with_zero_lr_does_not_move(info):
    frozen, moving = _quadratic_params()
    kept = frozen.detach().clone()
    opt = info.build([{"params": [frozen], "lr": 0.0}, {"params": [moving]}], lr=1e-2)
    moving_before = moving.detach().clone()
    _train(opt, [frozen, moving], 12)
    assert torch.equal(frozen, kept)
    assert not torch.equal(moving, moving_before)


@pytest.mark.parametrize(("info", "kwargs"), CASES, ids=IDS)
def test_zero_grads_and_missing_grads_do_not_move(info, kwargs):
    params = _quadratic_params()
    kwargs = {k: v for k, v in kwargs.items() if k != "weight_decay"}
    opt = info.build(params, **kwargs)
    before = [p.detach().clone() for p in params]
    params[0].grad = torch.zeros_like(params[0])
    for _ in range(13):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
    assert len(opt.state.get(params[1], {})) == 0  # no grad -> no state


@BY_NAME
def test_error_inputs(info):
    for kwargs, error, match in info.error_inputs:
        with pytest.raises(error, match=match):
            info.build(_quadratic_params(), **kwargs)


@BY_NAME
def test_error_in_added_param_group(info):
    if info.name == "Lookahead":
        opt = info.build(_quadratic_params()[:1])
        bad = {"params": [torch.zeros(2, requires_grad=True)], "sync_period": -1}
    else:
        opt = info.build(_quadratic_params()[:1])
        bad = {"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0}
    with pytest.raises(ValueError, match="-1"):
        opt.add_param_group(bad)
    assert len(opt.param_groups) == 1


@BY_NAME
def test_sparse_gradients_are_rejected_at_step(info):
    params = _quadratic_params()
    opt = info.build(params)
    params[0].grad = torch.zeros_like(params[0]).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


def _foreach_params(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return [
        torch.randn(40, 30, generator=g, dtype=dtype).requires_grad_(),
        torch.randn(30, generator=g, dtype=dtype).requires_grad_(),  # frozen: never has a grad
        torch.randn(0, dtype=dtype).requires_grad_(),  # zero-size
        torch.randn(70000, generator=g, dtype=dtype).requires_grad_(),  # own scratch bucket
    ]


FOREACH = [(c, i) for c, i in zip(CASES, IDS, strict=True) if c[0].supports_foreach]


@pytest.mark.parametrize(("info", "kwargs"), [c for c, _ in FOREACH], ids=[i for _, i in FOREACH])
def test_foreach_equals_for_loop(info, kwargs):
    trajectories = []
    for foreach in (False, True, None):
        params = _foreach_params()
        opt = info.build(params, foreach=foreach, **kwargs)
        g = torch.Generator().manual_seed(2)
        for _ in range(10):  # RAdam rectifies from step 6 on
            for k in (0, 2, 3):
                params[k].grad = torch.randn(params[k].shape, generator=g, dtype=torch.float64)
            opt.step()
        trajectories.append(params)
        assert len(opt.state.get(params[1], {})) == 0
    for other in trajectories[1:]:
        for a, b in zip(trajectories[0], other, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _save_load(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(("info", "kwargs"), CASES, ids=IDS)
def test_state_dict_round_trip_continues_bit_for_bit(info, kwargs):
    params = _quadratic_params()
    opt = info.build(params, **kwargs)
    _train(opt, params, 7)
    clones = [p.detach().clone().requires_grad_() for p in params]
    fresh = info.build(clones, **{**kwargs, "lr": 0.5})  # lr comes back from the state dict
    fresh.load_state_dict(_save_load(opt.state_dict()))
    assert fresh.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for _ in range(8):  # past a Lookahead sync
        _train(opt, params, 1)
        _train(fresh, clones, 1)
        assert all(torch.equal(a, b) for a, b in zip(params, clones, strict=True))


@BY_NAME
def test_schedulers_drive_the_learning_rate(info):
    params = _quadratic_params()
    opt = info.build(params, lr=0.1)
    step_lr = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(4):
        _train(opt, params, 1)
        step_lr.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)

    params = _quadratic_params()
    opt = info.build(params, lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)
    for _ in range(3):
        _train(opt, params, 1)
        plateau.step(1.0)  # a constant metric never improves
    assert opt.param_groups[0]["lr"] < 0.1 * 0.1 + 1e-12


@pytest.mark.parametrize("info", [i for i in OPTIMIZERS if i.name != "Lookahead"])
def test_one_cycle_lr_cycles_lr_and_momentum(info):
    params = _quadratic_params()
    opt = info.build(params, lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    momenta = []
    for _ in range(5):
        _train(opt, params, 1)
        sched.step()
        group = opt.param_groups[0]
        momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
    assert len(set(momenta)) > 1
    assert opt.param_groups[0]["lr"] != 0.1


@BY_NAME
def test_closure_is_called_and_loss_returned(info):
    params = _quadratic_params()
    opt = info.build(params, lr=1e-2)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = _loss(params)
        loss.backward()
        return loss

    before = [p.detach().clone() for p in params]
    loss = opt.step(closure)
    assert calls == [1]
    assert torch.is_tensor(loss) and loss.item() == pytest.approx(_loss([b for b in before]).item())
    assert not torch.equal(params[0], before[0])


@BY_NAME
def test_deepcopy_is_independent_and_equal(info):
    params = _quadratic_params()
    opt = info.build(params, lr=1e-2)
    _train(opt, params, 3)
    clone_params, clone = copy.deepcopy((params, opt))
    _train(opt, params, 4)
    _train(clone, clone_params, 4)
    assert all(torch.equal(a, b) for a, b in zip(params, clone_params, strict=True))
    assert clone.param_groups[0]["params"][0] is clone_params[0]


@BY_NAME
def test_repr_names_class_and_hyperparameters(info):
    text = repr(info.build(_quadratic_params(), lr=0.0123))
    assert info.name in text and "0.0123" in text


@BY_NAME
def test_step_hooks_run_in_order(info):
    params = _quadratic_params()
    opt = info.build(params)
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append(("pre", o is opt)))
    opt.register_step_post_hook(lambda o, a, k: seen.append(("post", o is opt)))
    _train(opt, params, 1)
    assert seen == [("pre", True), ("post", True)]
    assert isinstance(opt, torch.optim.Optimizer)
