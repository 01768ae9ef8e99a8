"""Compiled rules are real torch optimizers and reproduce their references bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch

from es_opt.optim import Ligi
from es_opt.search import ProgramOptimizer, compile_rule, load_rule, optimizer_source, parse_program


def trajectory(make, steps=12, maximize_grads=False, seed=1):
    """Parameters after ``steps`` steps on random gradients; one tensor large enough for the
    vectorised kernels (with a tail), one small."""
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.nn.Parameter(torch.randn(1037, generator=gen)),
        torch.nn.Parameter(torch.randn(7, 3, generator=gen)),
    ]
    opt = make(params)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach().clone() for p in params], opt


def lion_reference(params, lr, weight_decay, beta1=0.9, beta2=0.99):
    """Lion (Chen et al. 2023, Algorithm 2) transcribed operation by operation."""
    state = [torch.zeros_like(p) for p in params]

    class Reference:
        @torch.no_grad()
        def step(self):
            for p, m in zip(params, state, strict=True):
                p.mul_(1 - lr * weight_decay)
                c = m * beta1 + p.grad * (1 - beta1)
                p.add_(torch.sign(c), alpha=-lr)
                m.copy_(m * beta2 + p.grad * (1 - beta2))

    return Reference()


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    ("rule", "reference"),
    [
        ("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)),
        ("ligi", lambda ps: Ligi(ps, lr=0.01, weight_decay=0.1)),
        ("lion", lambda ps: lion_reference(ps, lr=0.01, weight_decay=0.1)),
        ("sgd_momentum", lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=0.0)),
    ],
)
def test_shipped_rules_reproduce_their_reference_bit_for_bit(rule, reference, foreach):
    wd = 0.0 if rule == "sgd_momentum" else 0.1  # torch's SGD decay is L2, not decoupled
    expected, _ = trajectory(reference)
    got, _ = trajectory(
        lambda ps: ProgramOptimizer(ps, load_rule(rule), lr=0.01, weight_decay=wd, foreach=foreach)
    )
    for e, g in zip(expected, got, strict=True):
        assert torch.equal(e, g), (e - g).abs().max()


def test_unfused_adamw_differs_only_by_round_off():
    # the same maths written so the final subtraction cannot be fused: update = (m / d) / bc1
    # computed in float32, then w -= lr * update
    text = (
        load_rule("adamw")
        .__str__()
        .replace("update = div(t7, t4)", "t8 = div(t7, t4)\nupdate = add(t8, 0.0)")
    )
    expected, _ = trajectory(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1))
    got, _ = trajectory(lambda ps: ProgramOptimizer(ps, text, lr=0.01, weight_decay=0.1))
    assert not all(torch.equal(e, g) for e, g in zip(expected, got, strict=True))
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_continues_in_lockstep():
    _, opt = trajectory(lambda ps: ProgramOptimizer(ps, load_rule("ligi"), lr=0.01), steps=5)
    params = [p for group in opt.param_groups for p in group["params"]]
    clone_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    clone = ProgramOptimizer(clone_params, load_rule("ligi"), lr=0.01)
    clone.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert set(opt.state_dict()["state"][0]) == {"step", "v1"}  # v2 is dead in Ligi: not kept
    gen = torch.Generator().manual_seed(5)
    for _ in range(4):
        for a, b in zip(params, clone_params, strict=True):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        clone.step()
    for a, b in zip(params, clone_params, strict=True):
        assert torch.equal(a, b)


def test_state_dict_of_another_rule_is_refused():
    _, opt = trajectory(lambda ps: ProgramOptimizer(ps, load_rule("ligi")), steps=1)
    params = [p for group in opt.param_groups for p in group["params"]]
    other = ProgramOptimizer(params, load_rule("adamw"))
    with pytest.raises(ValueError, match="saved by a ProgramOptimizer running a different rule"):
        other.load_state_dict(opt.state_dict())


def test_lr_scheduler_drives_the_compiled_rule_like_torch_adamw():
    def run(make):
        gen = torch.Generator().manual_seed(3)
        p = torch.nn.Parameter(torch.randn(64, generator=gen))
        opt = make([p])
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        for _ in range(9):
            p.grad = torch.randn(64, generator=gen)
            opt.step()
            sched.step()
        return p.detach(), opt.param_groups[0]["lr"]

    expected, lr_a = run(lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.01))
    got, lr_b = run(lambda ps: ProgramOptimizer(ps, load_rule("adamw"), lr=0.1, weight_decay=0.01))
    assert lr_a == lr_b == 0.1 * 0.5**3
    assert torch.equal(expected, got)


def test_groups_without_grad_or_with_zero_lr_do_not_move_and_maximize_negates():
    frozen = torch.nn.Parameter(torch.ones(3))
    still = torch.nn.Parameter(torch.ones(3))
    moving = torch.nn.Parameter(torch.ones(3))
    opt = ProgramOptimizer(
        [{"params": [frozen, moving]}, {"params": [still], "lr": 0.0}], load_rule("lion"), lr=0.1
    )
    moving.grad = torch.tensor([1.0, -1.0, 0.0])
    still.grad = torch.ones(3)
    opt.step()
    assert torch.equal(frozen, torch.ones(3)) and frozen not in opt.state
    assert torch.equal(still, torch.ones(3))
    assert torch.equal(moving.detach(), torch.tensor([0.9, 1.1, 1.0]))
    up = torch.nn.Parameter(torch.ones(3))
    up.grad = torch.tensor([1.0, -1.0, 0.0])
    ProgramOptimizer([up], load_rule("lion"), lr=0.1, maximize=True).step()
    assert torch.equal(up.detach(), torch.tensor([1.1, 0.9, 1.0]))


def test_closure_loss_is_returned():
    p = torch.nn.Parameter(torch.tensor([2.0]))
    opt = ProgramOptimizer([p], load_rule("sgd_momentum"), lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 4.0
    assert float(p) == pytest.approx(2.0 - 0.1 * 4.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
        ({"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
        ({"program": 3}, TypeError, "program must be a Program or its text, got int"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    p = torch.nn.Parameter(torch.ones(2))
    kwargs = {"program": load_rule("lion"), **kwargs}
    with pytest.raises(error, match=match):
        ProgramOptimizer([p], **kwargs)


def test_compiled_class_and_generated_source_behave_as_the_rule(tmp_path):
    rule = load_rule("ligi")
    Compiled = compile_rule(rule, "FoundRule")
    namespace: dict = {}
    exec(optimizer_source(rule, "FoundRule"), namespace)  # the module a user would save
    a, _ = trajectory(lambda ps: Compiled(ps, lr=0.01))
    b, _ = trajectory(lambda ps: namespace["FoundRule"](ps, lr=0.01))
    c, _ = trajectory(lambda ps: Ligi(ps, lr=0.01))
    for x, y, z in zip(a, b, c, strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)
    with pytest.raises(ValueError, match="name must be a Python identifier, got 'a b'"):
        compile_rule(rule, "a b")


def test_random_rule_with_scalar_update_and_scalar_state_runs():
    # update and v1 independent of the tensors: broadcast as scalars
    opt_rule = parse_program("v1 = add(step, 0.0)\nt0 = mul(v1, 0.5)\nupdate = add(t0, g)")
    p = torch.nn.Parameter(torch.zeros(2))
    opt = ProgramOptimizer([p], opt_rule, lr=1.0)
    for _ in range(2):
        p.grad = torch.zeros(2)
        opt.step()
    # step 1: update = 0.5; step 2: update = 1.0
    assert torch.equal(p.detach(), torch.tensor([-1.5, -1.5]))
    assert set(opt.state[p]) == {"step"}  # v1 is assigned before it is read: no state kept


def test_zero_scalar_divisor_in_the_fused_step_diverges_instead_of_raising():
    rule = parse_program("t0 = sub(1.0, 1.0)\nupdate = div(g, t0)")
    p = torch.nn.Parameter(torch.ones(2))
    opt = ProgramOptimizer([p], rule, lr=0.1)
    p.grad = torch.tensor([1.0, -1.0])
    opt.step()  # w -= (lr / 0) * g, as IEEE arithmetic gives it
    assert p.detach().tolist() == [-float("inf"), float("inf")]


def test_foreach_equals_the_loop_on_random_programs():
    import numpy as np

    from es_opt.search.mutation import random_program

    rng = np.random.default_rng(0)
    for _ in range(40):
        rule = random_program(rng, n_statements=8)
        results = []
        for foreach in (False, True):
            got, _ = trajectory(
                lambda ps, f=foreach, r=rule: ProgramOptimizer(ps, r, lr=0.01, foreach=f), steps=3
            )
            results.append(got)
        for a, b in zip(*results, strict=True):
            assert torch.equal(a.nan_to_num(), b.nan_to_num()), str(rule)
