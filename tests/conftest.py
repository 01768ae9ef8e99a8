"""Shared tiny networks and objectives for the tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from es_opt import Objective


def make_mlp(seed: int = 0, sizes: tuple[int, ...] = (3, 4, 2), dtype=torch.float32) -> nn.Module:
    """A small MLP whose initial weights come from an explicit generator."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(a, b))
    net = nn.Sequential(*layers).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.5)
    return net


class Quadratic(Objective):
    """−Σ (θ − target)²: maximised at θ = target."""

    def __init__(self, target: float = 0.5):
        self.target = target

    def __call__(self, model, samples):
        return -float(
            sum((p.detach() - self.target).square().sum() for p in model.net.parameters())
        )


class LinearObjective(Objective):
    """w·θ over the net's flattened trainable parameters."""

    def __init__(self, w: torch.Tensor):
        self.w = w

    def __call__(self, model, samples):
        flat = torch.cat([p.reshape(-1) for p in model.net.parameters()])
        return float(self.w.to(flat.dtype) @ flat)


@pytest.fixture
def one_thread():
    """Torch on one thread during the test, restored after: with tiny tensors one thread is many
    times faster than several on a busy machine. A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mlp():
    return make_mlp()


def trainable_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def assert_same_params(a: nn.Module | dict, b: nn.Module | dict) -> None:
    sa = a if isinstance(a, dict) else trainable_state(a)
    sb = b if isinstance(b, dict) else trainable_state(b)
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), f"parameter {name} differs"
