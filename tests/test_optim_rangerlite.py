"""RangerLite against torch.optim.RAdam and a transcription of the rangerlite 1.0.3 reference."""

from __future__ import annotations

import io

import pytest
import torch

import es_opt.optim._buckets as optim_buckets
import es_opt.optim._kernels as optim_kernels
from es_opt.optim import RangerLite

# With the small sizes of the ``chunked`` fixture the last two get their own scratch buckets and
# the contiguous one is processed in several chunks plus a remainder.
SHAPES = [(40, 30), (30,), (3,), (10_001,), (90, 60)]


@pytest.fixture
def chunked(monkeypatch):
    """Bucket and chunk sizes small enough to exercise the large-tensor paths on small tensors
    (tensors of realistic size make each test seconds slower on a busy machine)."""
    monkeypatch.setattr(optim_buckets, "OWN_BUCKET_NUMEL", 1 << 12)
    monkeypatch.setattr(optim_kernels, "OWN_BUCKET_NUMEL", 1 << 12)
    monkeypatch.setattr(optim_buckets, "CHUNK_NUMEL", 1 << 11)
    monkeypatch.setattr(optim_kernels, "RADAM_CHUNK_NUMEL", 1 << 11)


def _params(dtype=torch.float32, shapes=SHAPES, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    # a non-contiguous (transposed) parameter takes the unchunked path
    params = [p.t() if p.shape == (90, 60) else p for p in params]
    return [p.requires_grad_() for p in params]


def _clone(params):
    return [p.detach().clone().requires_grad_() for p in params]


def _set_grads(generator, *param_lists, skip=()):
    for k, p in enumerate(param_lists[0]):
        grad = None if k in skip else torch.randn(p.shape, generator=generator, dtype=p.dtype)
        for params in param_lists:
            params[k].grad = None if grad is None else grad.clone()


def _save_load(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.usefixtures("chunked")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("weight_decay", "decoupled", "maximize"),
    [(0.0, True, False), (0.1, True, True), (0.1, False, False), (0.1, False, True)],
)
def test_defaults_equal_torch_radam_defaults_bit_for_bit(dtype, weight_decay, decoupled, maximize):
    """Default against default: RangerLite(foreach=None) uses the arithmetic torch picks."""
    ours = _params(dtype)
    theirs = _clone(ours)
    hyper = {"lr": 1e-2, "weight_decay": weight_decay, "decoupled_weight_decay": decoupled,
             "maximize": maximize}  # fmt: skip
    opt = RangerLite(ours, **hyper, alpha=1.0)
    ref = torch.optim.RAdam(theirs, **hyper, betas=(0.95, 0.999), eps=1e-5)
    g = torch.Generator().manual_seed(1)
    for _ in range(18):  # rho_t > 5 from step 6 on: 13 rectified steps
        _set_grads(g, ours, theirs)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b)


@pytest.mark.usefixtures("chunked")
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    ("weight_decay", "decoupled", "maximize"),
    [(0.0, True, False), (0.1, True, True), (0.1, False, False), (0.1, False, True)],
)
@pytest.mark.parametrize("alpha", [1, 1.0])
def test_alpha_one_is_torch_radam_bit_for_bit(foreach, weight_decay, decoupled, maximize, alpha):
    ours = _params()
    theirs = _clone(ours)
    hyper = {"lr": 1e-2, "betas": (0.95, 0.999), "eps": 1e-5, "weight_decay": weight_decay}
    opt = RangerLite(ours, **hyper, alpha=alpha, decoupled_weight_decay=decoupled,
                     maximize=maximize, foreach=foreach)  # fmt: skip
    ref = torch.optim.RAdam(theirs, **hyper, decoupled_weight_decay=decoupled,
                            maximize=maximize, foreach=foreach)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    for _ in range(12):
        _set_grads(g, ours, theirs)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b)


def test_default_arithmetic_follows_torch_rule():
    """foreach=None: torch's single-tensor arithmetic on CPU (the multi-tensor one differs)."""
    ours = _params(shapes=[(200,)])
    single, multi = _clone(ours), _clone(ours)
    opt = RangerLite(ours, lr=1e-2, alpha=1.0)
    refs = [torch.optim.RAdam(ps, lr=1e-2, betas=(0.95, 0.999), eps=1e-5,
                              decoupled_weight_decay=True, foreach=f)
            for ps, f in ((single, False), (multi, True))]  # fmt: skip
    g = torch.Generator().manual_seed(2)
    for _ in range(10):
        _set_grads(g, ours, single, multi)
        for o in (opt, *refs):
            o.step()
    assert torch.equal(ours[0], single[0])
    assert not torch.equal(single[0], multi[0])  # else this test could not tell them apart


def _rangerlite_reference(params, steps, grads, lr, betas, eps, wd, k, alpha):
    """The rangerlite 1.0.3 update: RAdam (decoupled decay), then the pull every k-th step."""
    radam = torch.optim.RAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=wd,
                              decoupled_weight_decay=True)  # fmt: skip
    slow = {}
    for t in range(steps):
        for p, g in zip(params, grads[t], strict=True):
            p.grad = g
            if p not in slow and g is not None:
                slow[p] = p.detach().clone()
        radam.step()
        with torch.no_grad():
            for p in params:
                state = radam.state.get(p)
                if state and p.grad is not None and int(state["step"]) % k == 0:
                    p.mul_(alpha).add_(slow[p], alpha=1 - alpha)
                    slow[p].copy_(p)
    return params


def _radam_transcription(theta, grads, lr, betas, eps, wd, k, alpha):
    """Plain equations, one scalar-free tensor at a time (float64)."""
    beta1, beta2 = betas
    m, v, slow = torch.zeros_like(theta), torch.zeros_like(theta), theta.clone()
    rho_inf = 2 / (1 - beta2) - 1
    for t, g in enumerate(grads, start=1):
        theta = theta * (1 - lr * wd)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        rho = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho > 5:
            r = ((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) ** 0.5
            theta = theta - lr * m_hat * r * (1 - beta2**t) ** 0.5 / (v.sqrt() + eps)
        else:
            theta = theta - lr * m_hat
        if t % k == 0:
            theta = slow + alpha * (theta - slow)
            slow = theta.clone()
    return theta


@pytest.mark.parametrize("foreach", [False, None])
def test_matches_rangerlite_reference_and_equations(foreach):
    hyper = {"lr": 3e-2, "betas": (0.95, 0.999), "eps": 1e-5}
    ours = _params(torch.float64, shapes=[(20, 10), (10,)])
    theirs = _clone(ours)
    start = [p.detach().clone() for p in ours]
    g = torch.Generator().manual_seed(4)
    grads = [[torch.randn(p.shape, generator=g, dtype=torch.float64) for p in ours]
             for _ in range(25)]  # fmt: skip
    opt = RangerLite(ours, **hyper, weight_decay=0.01, foreach=foreach)
    for step_grads in grads:
        for p, grad in zip(ours, step_grads, strict=True):
            p.grad = grad.clone()
        opt.step()
    _rangerlite_reference(theirs, 25, grads, **hyper, wd=0.01, k=6, alpha=0.5)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    for k, p in enumerate(ours):
        expected = _radam_transcription(start[k], [s[k] for s in grads], **hyper, wd=0.01, k=6,
                                        alpha=0.5)  # fmt: skip
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12)


def test_params_that_miss_steps_count_their_own_updates():
    both = _params(shapes=[(5,), (4,)])
    alone = _clone(both)[1:]
    opt = RangerLite(both, lr=0.05, sync_period=3)
    single = RangerLite(alone, lr=0.05, sync_period=3)
    g = torch.Generator().manual_seed(5)
    for t in range(14):
        grad = torch.randn(4, generator=g)
        both[0].grad = torch.randn(5, generator=g)
        both[1].grad = grad.clone() if t % 2 == 0 else None
        opt.step()
        if t % 2 == 0:
            alone[0].grad = grad.clone()
            single.step()
        assert torch.equal(both[1], alone[0])
    assert opt.state[both[0]]["step"] == 14 and opt.state[both[1]]["step"] == 7


def test_per_group_lookahead_settings():
    a, b = _params(shapes=[(6,), (6,)])
    a2, b2 = _clone([a, b])
    opt = RangerLite([{"params": [a], "lookahead_steps": 2, "lookahead_alpha": 0.3},
                      {"params": [b], "lr": 0.02, "betas": (0.9, 0.99)}], lr=0.05)  # fmt: skip
    ref_a = RangerLite([a2], lr=0.05, lookahead_steps=2, lookahead_alpha=0.3)
    ref_b = RangerLite([b2], lr=0.02, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(6)
    for _ in range(13):
        _set_grads(g, [a, b], [a2, b2])
        for o in (opt, ref_a, ref_b):
            o.step()
    assert torch.equal(a, a2) and torch.equal(b, b2)
    ref_default = _clone([a2])
    assert not torch.equal(ref_default[0], b2)


@pytest.mark.parametrize("clip", [{"grad_clip_norm": 0.5}, {"grad_clip_value": 0.2}])
def test_gradient_clipping_works_on_a_copy(clip):
    ours = _params(torch.float64, shapes=[(30,), (7, 3)])
    theirs = _clone(ours)
    opt = RangerLite(ours, lr=0.05, alpha=1.0, foreach=False, **clip)
    ref = torch.optim.RAdam(theirs, lr=0.05, betas=(0.95, 0.999), eps=1e-5,
                            decoupled_weight_decay=True, foreach=False)  # fmt: skip
    g = torch.Generator().manual_seed(7)
    for _ in range(10):
        _set_grads(g, ours, theirs)
        raw = [p.grad.clone() for p in ours]
        opt.step()
        assert all(torch.equal(p.grad, r) for p, r in zip(ours, raw, strict=True))
        if "grad_clip_norm" in clip:
            torch.nn.utils.clip_grad_norm_(theirs, clip["grad_clip_norm"])
        else:
            torch.nn.utils.clip_grad_value_(theirs, clip["grad_clip_value"])
        ref.step()
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)


def test_maximize_leaves_grad_untouched():
    params = _params(shapes=[(8,)])
    opt = RangerLite(params, maximize=True, grad_clip_value=10.0)
    params[0].grad = torch.ones(8)
    before = params[0].detach().clone()
    opt.step()
    assert torch.equal(params[0].grad, torch.ones(8))
    assert bool((params[0] > before).all())


@pytest.mark.parametrize("foreach", [False, True])
def test_loads_a_torch_radam_state_dict(foreach):
    theirs = _params(shapes=[(12,), (4, 4)])
    ours = _clone(theirs)
    ref = torch.optim.RAdam(theirs, lr=0.03, betas=(0.95, 0.999), eps=1e-5,
                            decoupled_weight_decay=True, foreach=foreach)  # fmt: skip
    g = torch.Generator().manual_seed(8)
    for _ in range(4):
        _set_grads(g, theirs)
        ref.step()
    with torch.no_grad():
        for a, b in zip(ours, theirs, strict=True):
            a.copy_(b)
    opt = RangerLite(ours, alpha=1.0, foreach=foreach)
    opt.load_state_dict(_save_load(ref.state_dict()))
    state = opt.state[ours[0]]
    assert state["step"] == 4 and isinstance(state["step"], int)
    assert torch.equal(state["slow_param"], ours[0])
    assert opt.param_groups[0]["sync_period"] == 6
    for _ in range(8):
        _set_grads(g, ours, theirs)
        opt.step()
        ref.step()
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_loads_a_state_dict_saved_before_an_option_existed():
    params = _params(shapes=[(5,)])
    opt = RangerLite(params, lr=0.05)
    g = torch.Generator().manual_seed(9)
    for _ in range(3):
        _set_grads(g, params)
        opt.step()
    saved = opt.state_dict()
    for group in saved["param_groups"]:
        del group["grad_clip_norm"]
    fresh = RangerLite(_clone(params), lr=0.05)
    fresh.load_state_dict(_save_load(saved))
    assert fresh.param_groups[0]["grad_clip_norm"] is None
    _set_grads(g, fresh.param_groups[0]["params"])
    fresh.step()
    assert fresh.state[fresh.param_groups[0]["params"][0]]["step"] == 4


@pytest.mark.usefixtures("chunked")
def test_step_never_reads_values_back(monkeypatch):
    """Nothing in a step converts a tensor to a Python value (a device sync on GPU)."""
    params = _params(shapes=[(10_001,), (5, 3)])
    opt = RangerLite(params, lr=0.05, sync_period=2, grad_clip_norm=1.0, grad_clip_value=0.5)
    g = torch.Generator().manual_seed(10)

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronisation in step")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    before = [p.detach().clone() for p in params]
    for _ in range(8):
        _set_grads(g, params)
        opt.step()
    monkeypatch.undo()
    assert not torch.equal(params[0], before[0])


def _old_format(state_dict):
    """The state dict an es_opt version before the sync_period/alpha names wrote: the same but
    with the groups' Lookahead options under the rangerlite names."""
    old = {"state": state_dict["state"], "param_groups": []}
    for group in state_dict["param_groups"]:
        group = dict(group)
        group["lookahead_steps"] = group.pop("sync_period")
        group["lookahead_alpha"] = group.pop("sync_alpha")
        old["param_groups"].append(group)
    return old


def test_loads_a_state_dict_with_the_rangerlite_option_names():
    params = _params(shapes=[(6,), (3, 2)])
    opt = RangerLite(params, lr=0.05, sync_period=4, alpha=0.3)
    g = torch.Generator().manual_seed(11)
    for _ in range(3):
        _set_grads(g, params)
        opt.step()
    clones = _clone(params)
    fresh = RangerLite(clones, lr=0.5)  # default period and alpha: the saved ones must win
    fresh.load_state_dict(_save_load(_old_format(opt.state_dict())))
    group = fresh.param_groups[0]
    assert (group["sync_period"], group["sync_alpha"]) == (4, 0.3)
    assert "lookahead_steps" not in group and "lookahead_alpha" not in group
    assert set(fresh.state_dict()["param_groups"][0]) == set(opt.state_dict()["param_groups"][0])
    for _ in range(6):  # through the syncs at steps 4 and 8
        _set_grads(g, params, clones)
        opt.step()
        fresh.step()
        assert all(torch.equal(a, b) for a, b in zip(params, clones, strict=True))


def test_rangerlite_names_build_the_same_optimizer():
    old = RangerLite(_params(shapes=[(4,)]), lookahead_steps=3, lookahead_alpha=0.25)
    new = RangerLite(_params(shapes=[(4,)]), sync_period=3, alpha=0.25)
    positional = RangerLite(_params(shapes=[(4,)]), 1e-3, (0.95, 0.999), 1e-5, 0.0, 3, 0.25)
    groups = [{k: v for k, v in o.param_groups[0].items() if k != "params"}
              for o in (old, new, positional)]  # fmt: skip
    assert groups[0] == groups[1] == groups[2]
    assert groups[0]["sync_period"] == 3 and groups[0]["sync_alpha"] == 0.25


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sync_period": 3, "lookahead_steps": 4}, r"lookahead_steps: 4.*sync_period.*3"),
        ({"alpha": 0.2, "lookahead_alpha": 0.4}, r"lookahead_alpha: 0\.4.*alpha.*0\.2"),
    ],
)
def test_both_spellings_with_two_values_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RangerLite(_params(shapes=[(4,)]), **kwargs)
    group = {"params": _params(shapes=[(2,)]), "sync_period": 2, "lookahead_steps": 5}
    opt = RangerLite(_params(shapes=[(4,)]))
    with pytest.raises(ValueError, match=r"lookahead_steps: 5.*sync_period.*2"):
        opt.add_param_group(group)
    assert len(opt.param_groups) == 1
