"""float32 master weights for float16 / bfloat16 models (es_opt/precision.py)."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from torch import nn

from es_opt import ESOptimizer, Model, Objective
from es_opt.precision import MasterWeights, RoundedAwayWarning

LOW = [torch.bfloat16, torch.float16]


class Target(Objective):
    """−Σ (θ − 2)²: every step pushes every weight up (module level: picklable)."""

    def __call__(self, model, samples):
        return -float(
            sum((p.detach().double() - 2.0).square().sum() for p in model.net.parameters())
        )


class Seen(Objective):
    """Records the weights each member is evaluated with."""

    def __init__(self):
        self.seen = []

    def __call__(self, model, samples):
        self.seen.append(torch.cat([p.detach().reshape(-1) for p in model.net.parameters()]))
        return -float(
            sum((p.detach().double() - 2.0).square().sum() for p in model.net.parameters())
        )


def ones_net(dtype) -> nn.Module:
    net = nn.Linear(4, 2).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    return net


def make(net, lr=1e-4, **options):
    """Plain SGD with a step far below half of bf16's spacing at 1.0 (2⁻⁸)."""
    options.setdefault("objective_fn", Target())
    return ESOptimizer(
        net, torch.optim.SGD(net.parameters(), lr=lr), sigma=0.1, n_samples=6, seed=3, **options
    )


@pytest.mark.parametrize("dtype", LOW)
def test_the_inner_optimizer_steps_float32_copies_and_the_net_gets_their_cast(dtype):
    net = ones_net(dtype)
    es = make(net)
    master = es._master.parameters()
    assert all(m.dtype == torch.float32 for m in master.values())
    held = {id(p) for p in es.optimizer.param_groups[0]["params"]}
    assert held == {id(m) for m in master.values()}
    for _ in range(40):
        before = {n: m.detach().clone() for n, m in master.items()}
        es.gradient_step()
        for name, m in master.items():  # SGD's own arithmetic on the float32 copy: m - lr·grad
            assert torch.equal(m.detach(), before[name].add(m.grad, alpha=-1e-4)), name
    for name, param in net.named_parameters():
        assert torch.equal(param.detach(), master[name].detach().to(dtype)), name
        assert torch.equal(param.grad, master[name].grad.to(dtype))
    # 40 steps of ~1e-4 add up past half a bf16 / fp16 spacing: the weights moved
    assert all(bool((p.detach() != 1.0).any()) for p in net.parameters())


@pytest.mark.parametrize("dtype", LOW)
def test_without_master_weights_the_same_steps_round_away_with_a_warning(dtype):
    net = ones_net(dtype)
    es = make(net, lr=1e-5, master_weights=False)  # below half of fp16's spacing 2⁻¹⁰ too
    with pytest.warns(RoundedAwayWarning, match="changed no weight"):
        for _ in range(5):
            es.gradient_step()
    assert all(bool((p.detach() == 1.0).all()) for p in net.parameters())
    assert all(p.grad.dtype == dtype and bool(p.grad.ne(0).any()) for p in net.parameters())


def test_no_warning_with_master_weights_or_in_float32():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RoundedAwayWarning)
        make(ones_net(torch.bfloat16)).gradient_step()
        make(ones_net(torch.float32), lr=0.0).gradient_step()
    net = ones_net(torch.float32)  # float32 needs no master weights, even when asked for
    assert not MasterWeights(Model(net), torch.optim.SGD(net.parameters(), lr=1.0), True).enabled


def test_members_are_built_from_the_float32_centre_and_rounded_once():
    net = ones_net(torch.bfloat16)
    seen = Seen()
    es = make(net, objective_fn=seen)
    es.gradient_step()
    population = es.ask()
    assert population.center.dtype == torch.float32
    seen.seen.clear()
    es.evaluator.evaluate(population, None)
    for index, weights in enumerate(seen.seen):  # cast(θ₃₂ ± σε), not cast(θ) ± cast(σε)
        assert torch.equal(weights, population.parameters(index).to(torch.bfloat16))


def test_resume_from_state_dict_is_bit_exact_with_master_weights():
    def run(es, steps):
        for _ in range(steps):
            es.gradient_step()

    net = ones_net(torch.bfloat16)
    es = make(net, lr=3e-3)
    run(es, 3)
    buffer = io.BytesIO()
    torch.save({"net": net.state_dict(), "es": es.state_dict()}, buffer)
    run(es, 4)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["es"]["master_weights"]["weight"].dtype == torch.float32
    other = ones_net(torch.bfloat16)
    resumed = make(other, lr=3e-3)
    other.load_state_dict(saved["net"])
    resumed.load_state_dict(saved["es"])
    run(resumed, 4)
    for name, param in net.named_parameters():
        assert torch.equal(param, dict(other.named_parameters())[name]), name
        assert torch.equal(es._master.parameters()[name], resumed._master.parameters()[name])


def test_a_checkpoint_loads_the_master_weights_with_the_net(tmp_path):
    from es_opt.training.checkpoint import load_checkpoint, save_checkpoint

    es = make(ones_net(torch.bfloat16), lr=3e-3)
    for _ in range(3):
        es.gradient_step()
    save_checkpoint(tmp_path / "run.pt", es)  # loading puts the ES state first, then the net
    resumed = make(ones_net(torch.bfloat16), lr=3e-3)
    load_checkpoint(tmp_path / "run.pt", resumed)
    for _ in range(3):
        es.gradient_step()
        resumed.gradient_step()
    for name, master in es._master.parameters().items():
        assert torch.equal(resumed._master.parameters()[name], master), name


def test_weights_edited_between_steps_become_the_new_centre():
    net = ones_net(torch.bfloat16)
    es = make(net)
    es.gradient_step()
    with torch.no_grad():
        net.weight.fill_(0.25)
    population = es.ask()
    weight = population.unflatten(population.center)["weight"]
    assert torch.equal(weight, torch.full((2, 4), 0.25))
    bias = population.unflatten(population.center)["bias"]  # untouched: keeps its float32 value
    assert not torch.equal(bias, net.bias.detach().float())


def test_a_bad_master_weights_state_is_refused_before_anything_changes():
    net = ones_net(torch.bfloat16)
    es = make(net)
    es.gradient_step()
    state = es.state_dict()
    state["master_weights"] = {"weight": torch.zeros(3)}
    before = copy.deepcopy(es.state_dict())
    with pytest.raises(ValueError, match=r"master_weights must hold the float32 copies of"):
        es.load_state_dict(state)
    state["master_weights"] = {"weight": torch.zeros(3), "bias": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"master_weights\['weight'\] must be a tensor of shape"):
        es.load_state_dict(state)
    after = es.state_dict()
    for name, value in before["master_weights"].items():
        assert torch.equal(after["master_weights"][name], value)
    assert after["generation"] == before["generation"]


def test_optimizer_state_is_carried_over_in_float32():
    net = ones_net(torch.bfloat16)
    adam = torch.optim.Adam(net.parameters(), lr=1e-3)
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.5)
    adam.step()
    moments = {n: adam.state[p]["exp_avg"].clone() for n, p in net.named_parameters()}
    ESOptimizer(net, adam, objective_fn=Target(), n_samples=4)
    held = {id(p) for p in adam.state}
    assert not any(id(p) in held for p in net.parameters())
    for p, name in zip(adam.param_groups[0]["params"], ("weight", "bias"), strict=True):
        assert p.dtype == torch.float32
        assert adam.state[p]["exp_avg"].dtype == torch.float32
        assert torch.equal(adam.state[p]["exp_avg"], moments[name].float())


def test_options_are_checked():
    with pytest.raises(TypeError, match="master_weights must be True, False or None, got 'yes'"):
        make(ones_net(torch.bfloat16), master_weights="yes")
    with pytest.raises(ValueError, match="sync='replay' replays each update"):
        make(ones_net(torch.bfloat16), backend="multiprocess", n_workers=2, sync="replay")
    options = dict(master_weights=False, backend="multiprocess", sync="replay")
    with make(ones_net(torch.bfloat16), **options) as es:
        assert not es._master.enabled


class Batched(Objective):
    """A vectorised objective (the stacked path): members as one batch."""

    def __init__(self):
        self.x = torch.linspace(-1, 1, 12).reshape(4, 3)

    def __call__(self, model, samples):
        out = model.net(self.x.to(model.net[0].weight.dtype))
        return -float((out.double() - 1).square().mean())

    def evaluate_population(self, population, samples):
        out = population(self.x.to(population.model.net[0].weight.dtype))
        return -(out.double() - 1).square().mean(dim=(1, 2)).unsqueeze(-1)


@pytest.mark.parametrize("perturbation", ["dense", "lowrank"])
def test_stacked_members_of_a_bf16_net_are_computed_in_bf16(perturbation):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).to(torch.bfloat16)
    reference = copy.deepcopy(net)
    options = dict(n_samples=6, seed=1, perturbation=perturbation)
    es = ESOptimizer(net, objective_fn=Batched(), **options)
    batched = es.gradient_step().fitness
    one_at_a_time = ESOptimizer(reference, objective_fn=Batched().__call__, **options)
    rows = one_at_a_time.gradient_step().fitness
    assert torch.allclose(batched, rows, rtol=0.05)  # bf16 products in another order


def test_a_run_record_of_a_bf16_model_replays_its_master_weights(tmp_path):
    from es_opt.record import RunRecord, resume_from_record

    path = tmp_path / "run.record"
    es = make(ones_net(torch.bfloat16), lr=3e-3)
    es.fit(generations=4, callbacks=[RunRecord(path)])
    again = make(ones_net(torch.bfloat16), lr=3e-3)
    resume_from_record(again, path, 4)
    for name, master in es._master.parameters().items():
        assert torch.equal(again._master.parameters()[name], master), name
    assert torch.equal(again.model.net.weight, es.model.net.weight)
