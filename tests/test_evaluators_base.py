"""evaluate_indices, the one-at-a-time path every backend runs (es_opt/evaluators/base.py)."""

import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective
from es_opt.evaluators import evaluate_indices


class RunningMeanAfterForward(Objective):
    """Runs the net in training mode (BatchNorm updates its running statistics in place) and
    scores the running mean it leaves behind: a leak of buffers from one member to the next
    changes every later member's fitness."""

    def __call__(self, model, samples):
        model.net.train()
        model(samples)
        return float(model.net[1].running_mean.sum())


def test_buffers_never_leak_from_one_member_to_the_next():
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    inputs = torch.randn(16, 3, generator=gen)
    es = ESOptimizer(Model(net), objective_fn=RunningMeanAfterForward(), n_samples=8, seed=1)
    population = es.ask()
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    rows, _ = evaluate_indices(es.model, es.objective_fn, population, inputs, range(8))
    alone = [
        evaluate_indices(es.model, es.objective_fn, population, inputs, [i])[0][0]
        for i in reversed(range(8))
    ][::-1]
    assert all(torch.equal(a, b) for a, b in zip(rows, alone, strict=True))
    assert len({float(r) for r in rows}) == 8  # the members really differ
    for name, buffer in net.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
