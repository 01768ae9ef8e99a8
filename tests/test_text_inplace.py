"""In-place perturbation: exact restore in bf16, one module perturbed at a time."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from es_opt.text import member_deltas, perturbed_in_place

pytestmark = pytest.mark.usefixtures("one_thread")


def bf16_net() -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Embedding(16, 24), nn.LayerNorm(24), nn.Linear(24, 24), nn.Tanh())
    net.append(nn.Linear(24, 16))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return net.to(torch.bfloat16)


def test_a_thousand_perturb_restore_cycles_are_bit_exact_in_bf16():
    net = bf16_net()
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    params = dict(net.named_parameters())
    ids = torch.arange(8).view(2, 4)
    members = []  # 16 members (dense and low-rank), each tensor's noise drawn once
    for index in range(16):
        rank = None if index % 2 else 1
        deltas = member_deltas(params, seed=0, generation=0, index=index, sigma=1e-3, rank=rank)
        drawn = {name: fn() for name, fn in deltas.items()}
        members.append({name: (lambda d=d: d) for name, d in drawn.items()})
    outputs = set()
    with torch.no_grad():
        for cycle in range(1000):
            with perturbed_in_place(net, members[cycle % 16]):
                outputs.add(tuple(net(ids[:, : 1 + (cycle // 16) % 4]).flatten().tolist()))
    for name, param in net.named_parameters():
        assert torch.equal(param, start[name]), name
    assert len(outputs) == 64  # 16 members x 4 input lengths, each with its own weights


def test_restoring_by_subtraction_drifts_in_bf16():
    """The contrast: w ← round(round(w + δ) − δ) is not w, and the error accumulates."""
    weight = bf16_net()[2].weight.detach().clone()
    start = weight.clone()
    gen = torch.Generator().manual_seed(1)
    for _ in range(1000):
        delta = torch.randn(weight.shape, generator=gen) * 1e-3
        weight.add_(delta)
        weight.sub_(delta)
    changed = (weight != start).float().mean()
    assert changed > 0.1  # measured: 24 % of the weights are off after 1,000 cycles
    assert (weight.float() - start.float()).abs().max() > 1e-3


def test_each_module_runs_with_the_members_weights_and_only_one_is_perturbed():
    net = bf16_net().float()
    params = dict(net.named_parameters())
    deltas = member_deltas(params, seed=5, generation=2, index=3, sigma=0.1, rank=2)
    expected = copy.deepcopy(net)
    with torch.no_grad():
        for name, p in expected.named_parameters():
            p.add_(deltas[name]())
    perturbed_during = []

    def spy(module, args, output):
        perturbed_during.append(
            sum(not torch.equal(p, q) for p, q in zip(net.parameters(), start, strict=True))
        )

    start = [p.detach().clone() for p in net.parameters()]
    handles = [m.register_forward_hook(spy) for m in net if any(True for _ in m.parameters())]
    ids = torch.arange(8).view(2, 4)
    with torch.no_grad(), perturbed_in_place(net, deltas):
        got = net(ids)
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(got, expected(ids))
    assert max(perturbed_during) <= 2  # a module's weight and bias, never more
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), start, strict=True))


def test_the_restore_happens_when_the_forward_raises():
    net = bf16_net()
    start = [p.detach().clone() for p in net.parameters()]
    deltas = member_deltas(dict(net.named_parameters()), seed=0, generation=0, index=0, sigma=1.0)
    try:
        with perturbed_in_place(net, deltas):
            net(torch.full((1, 2), 99))  # index out of range inside the perturbed Embedding
    except IndexError:
        pass
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), start, strict=True))
