"""es_opt's optimizers under ``torch.compile``: same parameters as eager, bit for bit."""

from __future__ import annotations

import pytest
import torch

from es_opt.optim import ClipUp, Ligi, Lookahead, RangerLite

BUILDS = {
    "RangerLite": lambda ps: RangerLite(ps, lr=0.05, sync_period=2),
    "Ligi": lambda ps: Ligi(ps, lr=0.05),
    "ClipUp": lambda ps: ClipUp(ps, lr=0.05),
    "Lookahead": lambda ps: Lookahead(ClipUp(ps, lr=0.05), sync_period=2),
}


def _train(build, compiled):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=g).requires_grad_()
    x = torch.randn(5, 3, generator=g)
    opt = build([w])

    def train_step():
        loss = (x @ w.t()).square().sum()
        loss.backward()
        opt.step()
        opt.zero_grad()  # torch's decorated method while tracing, the plain one in eager mode
        return loss

    fn = torch.compile(train_step, backend="eager") if compiled else train_step
    for _ in range(3):
        fn()
    return w.detach()


START = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(BUILDS))
def test_compiled_training_step_equals_eager(name):
    import torch._dynamo  # imported here: only this test compiles

    torch._dynamo.reset()
    eager = _train(BUILDS[name], compiled=False)
    compiled = _train(BUILDS[name], compiled=True)
    assert torch.equal(eager, compiled)
    assert (eager - START).abs().min() > 1e-3  # every entry moved: the steps did run
