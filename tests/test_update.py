"""The one update function: the search step's −g into .grad of the selected parameters only, the
inner optimizer's step, all or nothing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from es_opt.distributions import OpenAIES
from es_opt.estimator import estimate_gradient
from es_opt.population import Population
from es_opt.shaping import centered_ranks
from es_opt.update import UpdateRule, apply_update, selected_center

RULE = UpdateRule((1.0,), centered_ranks, OpenAIES())


def setup():
    gen = torch.Generator().manual_seed(0)
    params = {
        "a": nn.Parameter(torch.randn(2, 3, generator=gen)),
        "b": nn.Parameter(torch.randn(4, generator=gen)),
    }
    population = Population(
        3, 7, 0.1, 6, ("b",), (torch.Size([4]),), selected_center(params, ("b",))
    )
    fitness = torch.tensor([[3.0], [1.0], [0.5], [2.0], [4.0], [0.0]], dtype=torch.float64)
    return params, population, fitness


def test_the_update_is_minus_g_on_the_selected_parameters_only():
    params, population, fitness = setup()
    before = {name: p.detach().clone() for name, p in params.items()}
    params["a"].grad = torch.ones(2, 3)  # a stale gradient on a parameter not selected
    step = apply_update(params, torch.optim.SGD(params.values(), lr=0.5), RULE, population, fitness)
    scores = centered_ranks(fitness[:, 0])
    g = estimate_gradient(scores, population.perturbations, sigma=0.1, dim=4, dtype=torch.float32)
    assert torch.equal(step.gradient, g) and step.sigma is None
    assert torch.equal(params["b"].grad, -g)
    assert torch.equal(params["b"].detach(), before["b"] + 0.5 * g)
    assert params["a"].grad is None and torch.equal(params["a"].detach(), before["a"])


class Broken(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("the inner optimizer broke")


def test_a_failing_optimizer_puts_every_grad_back():
    params, population, fitness = setup()
    grads = {"a": torch.full((2, 3), 2.0), "b": None}
    for name, grad in grads.items():
        params[name].grad = grad
    with pytest.raises(RuntimeError, match="the inner optimizer broke"):
        apply_update(params, Broken(params.values(), lr=0.1), RULE, population, fitness)
    assert params["a"].grad is grads["a"] and params["b"].grad is None


def test_selected_center_is_the_flat_selected_parameters_in_order():
    params, _, _ = setup()
    center = selected_center(params, ("b", "a"))
    assert torch.equal(center, torch.cat([params["b"].detach(), params["a"].detach().reshape(-1)]))
    center.add_(1.0)  # a copy: the parameters do not move
    assert not torch.equal(center[:4], params["b"].detach())
